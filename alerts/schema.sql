-- switchboard.alerts: alert state, its timeline, the notification outbox and every delivery attempt.
-- Created by switchboard.alerts.store.ensure(con) in the ingest DB (data/ingest.duckdb), so the tables are
-- published with the warehouse and the dashboard reads them from the read-only snapshot.
-- Idempotent: every statement is IF NOT EXISTS.

-- One row per incident, keyed by rule and cell: an incident alerts once, updates when worse, resolves.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id          VARCHAR PRIMARY KEY,   -- rule|country|carrier|template|code|prefix: stable across runs
    rule              VARCHAR NOT NULL,      -- the rule's name (alerts.toml or a built-in default)
    kind              VARCHAR NOT NULL,      -- error_rise, delivery_drop, cost_rise, fallback_failure, latency, opt_out, pumping, metric
    severity          VARCHAR NOT NULL,      -- info, warning, critical
    status            VARCHAR NOT NULL,      -- open or resolved
    country_iso2      VARCHAR,
    country_name      VARCHAR,
    carrier           VARCHAR,
    template_id       VARCHAR,
    error_code        INTEGER,
    prefix            VARCHAR,               -- pumping: the number prefix (E.164 digits) to block
    cells             VARCHAR,               -- JSON: the cells affected (dimension -> value)
    metric            VARCHAR,
    baseline_value    DOUBLE,
    recent_value      DOUBLE,
    impact            DOUBLE,                -- members not reached (or USD, or messages) so far: what "worse" compares
    p_value           DOUBLE,
    q_value           DOUBLE,                -- adjusted over every cell checked in that evaluation
    sentence          VARCHAR NOT NULL,      -- plain sentence, as notified
    what_to_do        VARCHAR,
    link              VARCHAR,               -- dashboard query string of the filtered view
    evidence          VARCHAR,               -- JSON: rule-specific evidence (pumping: conversion, new members, ...)
    since             TIMESTAMPTZ,           -- start of the window in which it was first seen
    first_seen        TIMESTAMPTZ NOT NULL,  -- evaluation time (data time: the newest sent_at) of the first finding
    last_seen         TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    resolved_at       TIMESTAMPTZ,
    notified_impact   DOUBLE,                -- impact at the last notification: "worse" is measured against it
    notified_at       TIMESTAMPTZ,
    notifications_sent INTEGER NOT NULL DEFAULT 0
);

-- The timeline of each alert: opened, worse, resolved, reopened, with the numbers at that moment.
CREATE TABLE IF NOT EXISTS alert_events (
    alert_id     VARCHAR NOT NULL,
    event_at     TIMESTAMPTZ NOT NULL,
    event        VARCHAR NOT NULL,
    impact       DOUBLE,
    recent_value DOUBLE,
    sentence     VARCHAR,
    notify       BOOLEAN NOT NULL            -- false when the quiet period held the notification back
);

-- One row per (alert event, channel) to deliver. Filled inside the ingest's writer transaction, delivered
-- after publish; pending rows are retried with backoff on later runs. The channel's target (webhook URL,
-- addresses) is resolved at delivery from alerts.toml / settings and never stored.
CREATE TABLE IF NOT EXISTS alert_outbox (
    notification_id VARCHAR PRIMARY KEY,     -- alert_id|event|at|channel
    alert_id        VARCHAR NOT NULL,
    event           VARCHAR NOT NULL,
    channel         VARCHAR NOT NULL,        -- webhook, slack, email
    payload         VARCHAR NOT NULL,        -- JSON of the alert as notified
    created_at      TIMESTAMPTZ NOT NULL,
    status          VARCHAR NOT NULL,        -- pending, sent, failed (gave up after max attempts)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      VARCHAR
);

-- Every delivery attempt, successful or not: a failed notification is visible, never silently lost.
CREATE TABLE IF NOT EXISTS alert_notifications (
    notification_id VARCHAR NOT NULL,
    alert_id        VARCHAR NOT NULL,
    channel         VARCHAR NOT NULL,
    attempt         INTEGER NOT NULL,
    attempted_at    TIMESTAMPTZ NOT NULL,    -- wall clock of the attempt
    target          VARCHAR,                 -- redacted: scheme and host of a webhook, the domain of addresses
    ok              BOOLEAN NOT NULL,
    status_code     INTEGER,                 -- HTTP status or SMTP reply code, when there was one
    error           VARCHAR                  -- one line, secrets redacted
);
