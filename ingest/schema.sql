-- Switchboard warehouse: raw tables (owned by ingest), bookkeeping and dimensions.
-- Applied idempotently by ingest.warehouse.create_schema(). Analysts: prefer the
-- *_facts views (views.sql), which are the stable contract.

CREATE SEQUENCE IF NOT EXISTS ingest_run_seq START 1;
CREATE SEQUENCE IF NOT EXISTS reject_seq START 1;

CREATE TABLE IF NOT EXISTS twilio_messages (
    sid                    VARCHAR PRIMARY KEY,
    account_sid            VARCHAR NOT NULL,
    messaging_service_sid  VARCHAR,
    direction              VARCHAR,
    from_number            VARCHAR,
    to_number              VARCHAR,
    status                 VARCHAR NOT NULL,
    error_code             INTEGER,
    num_segments           INTEGER,
    num_media              INTEGER,
    body_encoding          VARCHAR,        -- GSM-7 / UCS-2, computed from the body at ingest; the body itself is never stored
    body_length            INTEGER,        -- septets (GSM-7) or UTF-16 units (UCS-2)
    price                  DECIMAL(12, 5), -- as Twilio reports it: negative means a charge; NULL until priced
    price_unit             VARCHAR,
    price_usd              DECIMAL(12, 5), -- positive cost in USD (enrichment)
    date_created           TIMESTAMPTZ,
    date_sent              TIMESTAMPTZ,
    date_updated           TIMESTAMPTZ,
    to_country             VARCHAR,        -- ISO-3166 alpha-2 from phonenumbers (enrichment)
    to_carrier             VARCHAR,        -- approximate original carrier from phonenumbers' prefix data (enrichment)
    source                 VARCHAR NOT NULL, -- 'api' or 'bulk_export'
    ingest_run_id          BIGINT,
    loaded_at              TIMESTAMPTZ DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS twilio_calls (
    sid              VARCHAR PRIMARY KEY,
    account_sid      VARCHAR NOT NULL,
    parent_call_sid  VARCHAR,
    direction        VARCHAR,
    from_number      VARCHAR,
    to_number        VARCHAR,
    status           VARCHAR NOT NULL,
    answered_by      VARCHAR,
    duration_s       INTEGER,
    price            DECIMAL(12, 5),
    price_unit       VARCHAR,
    price_usd        DECIMAL(12, 5),
    start_time       TIMESTAMPTZ,
    end_time         TIMESTAMPTZ,
    date_created     TIMESTAMPTZ,
    date_updated     TIMESTAMPTZ,
    to_country       VARCHAR,
    to_carrier       VARCHAR,
    source           VARCHAR NOT NULL,
    ingest_run_id    BIGINT,
    loaded_at        TIMESTAMPTZ DEFAULT current_timestamp
);

-- Status events pushed by Twilio (status callbacks, Event Streams), spooled by `switchboard listen` and
-- loaded by the `receiver` ingest source (ingest/spool_source.py). The status history; the API rows stay
-- the record of what Twilio holds.
CREATE TABLE IF NOT EXISTS twilio_events (
    event_key       VARCHAR PRIMARY KEY,  -- the receiver's idempotency key: es:<CloudEvent id> or cb:<hash>
    resource        VARCHAR NOT NULL,     -- message | call
    sid             VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,
    status_rank     INTEGER NOT NULL,     -- how far along its life the status is (-1: unknown status)
    error_code      INTEGER,
    event_time      TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    account_sid     VARCHAR,
    push_source     VARCHAR NOT NULL,     -- callback | event-stream
    event_type      VARCHAR,
    event_id        VARCHAR,
    extra           VARCHAR,              -- JSON: mcc, mnc, segments, duration, ...
    ingest_run_id   BIGINT,
    loaded_at       TIMESTAMPTZ,
    matched_run_id  BIGINT                -- run that compared it with its row; NULL: no row yet
);
COMMENT ON TABLE twilio_events IS 'Status events pushed by Twilio (status callbacks and Event Streams), one row per delivered event (deduplicated by the receiver key). An event is compared with its twilio_messages/twilio_calls row once: in the run that loads it, or in the first later run that finds the row (the poller brings it; until then matched_run_id is NULL). The furthest-along status of the sid (rank, then time) replaces the row status and error_code when it is further along, or as far along and newer than the row date_updated; a status never goes back. The row date_updated then becomes NULL until the poller, the reconciler of record, reads the row again.';
COMMENT ON COLUMN twilio_events.event_key IS 'Idempotency key from the receiver: es:<CloudEvent id> or cb:<sha256 of the callback path and parameters>.';
COMMENT ON COLUMN twilio_events.resource IS 'message or call.';
COMMENT ON COLUMN twilio_events.sid IS 'Twilio message (SM/MM) or call (CA) SID.';
COMMENT ON COLUMN twilio_events.status IS 'Status the event reports, lower case (sent, delivered, undelivered, completed, ...).';
COMMENT ON COLUMN twilio_events.status_rank IS 'How far along its life the status is (queued 1, sent 3, final 4, read 5 for messages); -1 for a status unknown to Switchboard.';
COMMENT ON COLUMN twilio_events.error_code IS 'Twilio error code the event carries, NULL when none.';
COMMENT ON COLUMN twilio_events.event_time IS 'When Twilio says the change happened (UTC); the receive time when Twilio does not say (message status callbacks).';
COMMENT ON COLUMN twilio_events.received_at IS 'When switchboard listen accepted the event.';
COMMENT ON COLUMN twilio_events.account_sid IS 'Account or subaccount SID, when the event says.';
COMMENT ON COLUMN twilio_events.push_source IS 'callback (status callback) or event-stream (Event Streams webhook).';
COMMENT ON COLUMN twilio_events.event_type IS 'CloudEvent type, or status-callback.';
COMMENT ON COLUMN twilio_events.event_id IS 'CloudEvent id, or the I-Twilio-Idempotency-Token of a callback.';
COMMENT ON COLUMN twilio_events.extra IS 'JSON of what else the event carries: mcc, mnc, segments, duration, the callback URL query.';
COMMENT ON COLUMN twilio_events.ingest_run_id IS 'ingest_runs row of the run that loaded the event.';
COMMENT ON COLUMN twilio_events.loaded_at IS 'When the event was loaded.';
COMMENT ON COLUMN twilio_events.matched_run_id IS 'Run that compared the event with its warehouse row; NULL while the warehouse has no row for the sid (tried again every run).';

-- send_log and conversions have no PRIMARY KEY on purpose: event_id is unique all the
-- same (ingest inserts a batch, then deletes the earlier versions of its event ids, in one
-- transaction), and without the index 12M rows insert about 4x faster (DuckDB's ART index
-- insert dominates; ingest/README.md has the measurements).
CREATE TABLE IF NOT EXISTS send_log (
    event_id       VARCHAR NOT NULL,
    sent_at        TIMESTAMPTZ NOT NULL,
    channel        VARCHAR NOT NULL,   -- sms | voice | push | email
    purpose        VARCHAR,            -- password_reset | account_alert | verification | ...
    template_id    VARCHAR,
    experiment_id  VARCHAR,
    variant        VARCHAR,
    campaign_id    VARCHAR,
    user_id        VARCHAR NOT NULL,
    country        VARCHAR,            -- member's country (ISO-2) as the platform knows it
    locale         VARCHAR,
    provider_sid   VARCHAR,            -- Twilio SM…/CA… sid; NULL for push/email
    fallback_of    VARCHAR,            -- event_id of the attempt this one falls back from
    source_file    VARCHAR,
    ingest_run_id  BIGINT,
    error_code     INTEGER             -- Twilio error code when Twilio refused the send at create time
);

CREATE TABLE IF NOT EXISTS conversions (
    event_id         VARCHAR NOT NULL,
    user_id          VARCHAR NOT NULL,
    conversion_type  VARCHAR NOT NULL,  -- e.g. password_reset_completed
    occurred_at      TIMESTAMPTZ NOT NULL,
    source_file      VARCHAR,
    ingest_run_id    BIGINT
);

CREATE TABLE IF NOT EXISTS ingest_runs (
    run_id         BIGINT PRIMARY KEY,
    source         VARCHAR NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ,
    status         VARCHAR NOT NULL,   -- running | ok | failed | skipped | interrupted (killed; marked by the next run)
    rows_read      BIGINT DEFAULT 0,
    rows_loaded    BIGINT DEFAULT 0,
    rows_rejected  BIGINT DEFAULT 0,
    rows_deleted   BIGINT DEFAULT 0,   -- --full-refresh: rows gone from the source, deleted (not part of read)
    cursor_before  VARCHAR,
    cursor_after   VARCHAR,
    error          VARCHAR
);

-- columns added after the first release (a warehouse created before keeps working)
ALTER TABLE ingest_runs ADD COLUMN IF NOT EXISTS rows_deleted BIGINT DEFAULT 0;
ALTER TABLE send_log ADD COLUMN IF NOT EXISTS error_code INTEGER;
-- issue 18: an inbound message's body when it is one word of letters (a keyword candidate), else NULL
ALTER TABLE twilio_messages ADD COLUMN IF NOT EXISTS reply_word VARCHAR;

CREATE TABLE IF NOT EXISTS ingest_state (
    source      VARCHAR PRIMARY KEY,   -- e.g. 'messages:AC…', 'calls:AC…'
    cursor      VARCHAR,               -- ISO-8601 high-water mark of date_sent/start_time over completed windows
    updated_at  TIMESTAMPTZ,
    -- A window being read, committed with every page, so a run killed mid-window resumes
    -- from the next page instead of starting over (NULL when no window is open).
    window_lo   VARCHAR,
    window_hi   VARCHAR,
    resume_uri  VARCHAR,
    window_max  VARCHAR
);

CREATE TABLE IF NOT EXISTS ingest_files (
    path         VARCHAR PRIMARY KEY,
    size_bytes   BIGINT,
    mtime        DOUBLE,
    rows_loaded  BIGINT,
    run_id       BIGINT,
    loaded_at    TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS rejects (
    reject_id    BIGINT PRIMARY KEY,
    run_id       BIGINT,
    source       VARCHAR NOT NULL,
    location     VARCHAR,   -- file path or API page URI
    line         BIGINT,
    raw          VARCHAR,
    reason       VARCHAR NOT NULL,
    rejected_at  TIMESTAMPTZ DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS countries (
    iso2          VARCHAR PRIMARY KEY,
    iso3          VARCHAR,
    name          VARCHAR,
    region        VARCHAR,   -- UN M49 continent (data/country_regions.csv)
    calling_code  INTEGER,
    subregion     VARCHAR    -- UN M49 sub-region, e.g. South-eastern Asia
);

-- Every distinct phone number ingest has looked up once (phonenumbers is pure Python:
-- each number is resolved once, ever, then joined in SQL).
CREATE TABLE IF NOT EXISTS phone_numbers (
    number   VARCHAR PRIMARY KEY,
    country  VARCHAR,   -- ISO-2, NULL when the number does not parse
    carrier  VARCHAR    -- approximate original carrier (prefix data; ported numbers differ)
);

CREATE TABLE IF NOT EXISTS error_codes (
    code        INTEGER PRIMARY KEY,
    name        VARCHAR,
    channel     VARCHAR,
    category    VARCHAR,
    retryable   BOOLEAN,
    what_to_do  VARCHAR,
    more_info   VARCHAR
);

CREATE TABLE IF NOT EXISTS fx_rates (
    currency     VARCHAR PRIMARY KEY,
    usd_per_unit DOUBLE
);

-- Incremental warehouse bookkeeping (ingest/changes.py, ingest/incremental.py, ingest/publish.py).
-- A tombstone per deleted raw row, stamped with the run that deleted it (inserts and updates are found
-- by the rows' own ingest_run_id). Kept until every published snapshot and the facts have passed it.
CREATE TABLE IF NOT EXISTS _deleted_keys (
    run_id  BIGINT NOT NULL,
    tbl     VARCHAR NOT NULL,
    key     VARCHAR,
    aux     VARCHAR
);
-- The keys (or UTC days, for the rollups) of the facts tables each incremental build rewrote, by the
-- watermark of that build: a published snapshot at watermark W takes the rows of keys changed after W.
CREATE TABLE IF NOT EXISTS _fact_changes (
    watermark  BIGINT NOT NULL,
    tbl        VARCHAR NOT NULL,
    key        VARCHAR
);
-- One row: the facts reflect every raw row written by runs up to `watermark`; `rebuilt_at` is the
-- watermark of the last full build (a snapshot older than that is replaced by a copy, not patched);
-- `definition` fingerprints facts.sql, the dimensions and the conversion window (a change means a full build).
CREATE TABLE IF NOT EXISTS _facts_state (
    watermark   BIGINT NOT NULL,
    rebuilt_at  BIGINT NOT NULL,
    definition  VARCHAR NOT NULL,
    built_at    TIMESTAMPTZ
);
-- Experiment members' numbers (_experiment_exposures.member): given once, kept by every build.
CREATE TABLE IF NOT EXISTS _experiment_members (
    experiment_id  VARCHAR NOT NULL,
    user_id        VARCHAR NOT NULL,
    member         INTEGER NOT NULL
);
-- The published snapshot files and the watermark each holds (ingest/publish.py), for pruning.
CREATE TABLE IF NOT EXISTS _snapshots (
    path       VARCHAR PRIMARY KEY,
    watermark  BIGINT,
    published_at TIMESTAMPTZ
);
