-- Materialised facts and daily rollups behind the analyst views, one SELECT per table, each under a
-- `-- @table <name> key=<column> day=<column>` line (ingest.warehouse.fact_builds() reads them in order).
--
-- Each SELECT reads its inputs through the scope views named below (`-- @scope <view> <table>`), never
-- the raw tables directly. That is what lets one definition serve both builds (ingest/incremental.py):
--   * the full build (`switchboard ingest --rebuild-facts`, a new warehouse, a changed definition)
--     defines every scope view as its whole table, and CREATE OR REPLACEs each table with its SELECT;
--   * the incremental build defines each scope view as the rows a run's changes affect (the message
--     sids, call sids, send-log event ids, experiment members or UTC days named in `key=`/`day=`), deletes
--     those keys from the table and inserts the SELECT's rows.
-- So a SELECT must compute each output row from its own key's inputs only (or from whole small
-- dimension tables): no ORDER BY that matters, no window over rows of other keys.
-- Parameter $conversion_window_minutes: a conversion counts within this many minutes.
--
-- @scope _scope_messages           twilio_messages
-- @scope _scope_message_sends      send_log
-- @scope _scope_calls              twilio_calls
-- @scope _scope_call_sends         send_log
-- @scope _scope_sends              send_log
-- @scope _scope_fallback_sends     send_log
-- @scope _scope_conversions        conversions
-- @scope _scope_attempt_messages   _message_facts
-- @scope _scope_attempt_calls      _call_facts
-- @scope _scope_chain_attempts     _attempt_facts
-- @scope _scope_chain_calls        _call_facts
-- @scope _scope_exposure_attempts  _attempt_facts
-- @scope _scope_exposure_fallbacks _attempt_facts
-- @scope _scope_exposure_conversions conversions
-- @scope _scope_message_days       _message_facts
-- @scope _scope_call_days          _call_facts
-- @scope _scope_attempt_days       _attempt_facts

-- @table _message_facts key=sid day=sent_day
SELECT
    m.sid,
    m.account_sid,
    coalesce(m.messaging_service_sid, m.from_number)                        AS sender,
    m.messaging_service_sid,
    m.from_number,
    m.to_number,
    m.to_country                                                            AS country_iso2,
    c.iso3                                                                  AS country_iso3,
    c.name                                                                  AS country_name,
    c.region,
    m.to_carrier                                                            AS carrier,
    m.status,
    m.status IN ('delivered', 'read')                                       AS is_delivered,
    m.status IN ('undelivered', 'failed')                                   AS is_failed,
    m.status NOT IN ('delivered', 'read', 'undelivered', 'failed', 'canceled') AS is_pending,
    m.error_code,
    e.name                                                                  AS error_name,
    CASE WHEN m.error_code IS NOT NULL THEN coalesce(e.category, 'unknown') END AS error_category,
    e.retryable                                                             AS error_retryable,
    m.num_segments,
    m.body_encoding                                                         AS encoding,
    CAST(m.price_usd AS DOUBLE)                                             AS cost_usd,
    m.date_sent                                                             AS sent_at,
    CAST(timezone('UTC', m.date_sent) AS DATE)                              AS sent_day,
    CASE WHEN m.status IN ('delivered', 'read')
         THEN epoch(m.date_updated) - epoch(m.date_sent) END               AS delivery_latency_s,
    s.event_id,
    s.purpose,
    s.template_id,
    s.experiment_id,
    s.variant,
    s.campaign_id,
    s.user_id,
    m.source
FROM _scope_messages m
LEFT JOIN countries c   ON c.iso2 = m.to_country
LEFT JOIN error_codes e ON e.code = m.error_code
LEFT JOIN (SELECT * FROM _scope_message_sends WHERE provider_sid IS NOT NULL
           QUALIFY row_number() OVER (PARTITION BY provider_sid ORDER BY sent_at, event_id) = 1) s
       ON s.provider_sid = m.sid
WHERE m.direction IS NULL OR m.direction LIKE 'outbound%'
ORDER BY m.date_sent;

-- @table _call_facts key=sid day=start_day
SELECT
    k.sid,
    k.account_sid,
    k.from_number,
    k.to_number,
    k.to_country                                                            AS country_iso2,
    c.iso3                                                                  AS country_iso3,
    c.name                                                                  AS country_name,
    c.region,
    k.to_carrier                                                            AS carrier,
    k.status,
    k.status = 'completed'                                                  AS is_answered,
    k.answered_by,
    coalesce(k.answered_by LIKE 'machine%' OR k.answered_by = 'fax', false) AS is_machine,
    k.duration_s,
    CAST(k.price_usd AS DOUBLE)                                             AS cost_usd,
    coalesce(k.start_time, k.date_created)                                  AS started_at,
    CAST(timezone('UTC', coalesce(k.start_time, k.date_created)) AS DATE)   AS start_day,
    s.event_id,
    s.purpose,
    s.template_id,
    s.experiment_id,
    s.variant,
    s.campaign_id,
    s.user_id,
    s.fallback_of,
    k.source
FROM _scope_calls k
LEFT JOIN countries c ON c.iso2 = k.to_country
LEFT JOIN (SELECT * FROM _scope_call_sends WHERE provider_sid IS NOT NULL
           QUALIFY row_number() OVER (PARTITION BY provider_sid ORDER BY sent_at, event_id) = 1) s
       ON s.provider_sid = k.sid
WHERE k.direction IS NULL OR k.direction LIKE 'outbound%'
ORDER BY started_at;

-- @table _attempt_facts key=event_id day=sent_day
WITH fallbacks AS (
    SELECT fallback_of AS event_id, min(event_id) AS fallback_event_id
    FROM _scope_fallback_sends WHERE fallback_of IS NOT NULL GROUP BY fallback_of
),
attempts AS (
    SELECT
        s.event_id, s.sent_at, s.channel, s.purpose, s.template_id, s.experiment_id, s.variant,
        s.campaign_id, s.user_id, s.locale, s.provider_sid, s.fallback_of,
        coalesce(m.country_iso2, k.country_iso2, s.country)                 AS country_iso2,
        coalesce(m.status, k.status)                                        AS provider_status,
        -- a send Twilio refused at create time (no provider record, the send log's error code) is a
        -- known failure: false, not unknown
        CASE WHEN s.provider_sid IS NULL AND s.error_code IS NOT NULL THEN false
             WHEN s.channel = 'sms' THEN m.is_delivered
             WHEN s.channel = 'voice' THEN k.is_answered END                AS is_delivered,
        -- the provider's code, else the one the send log recorded when Twilio refused the send
        coalesce(m.error_code, s.error_code)                                AS error_code,
        coalesce(m.error_category,
                 CASE WHEN s.error_code IS NOT NULL THEN coalesce(se.category, 'unknown') END) AS error_category,
        coalesce(m.cost_usd, k.cost_usd)                                    AS cost_usd,
        m.num_segments,
        m.encoding,
        f.fallback_event_id
    FROM _scope_sends s
    LEFT JOIN _scope_attempt_messages m ON s.channel = 'sms'   AND m.sid = s.provider_sid
    LEFT JOIN _scope_attempt_calls k    ON s.channel = 'voice' AND k.sid = s.provider_sid
    LEFT JOIN fallbacks f      ON f.event_id = s.event_id
    LEFT JOIN error_codes se   ON se.code = s.error_code
)
SELECT
    a.event_id,
    a.sent_at,
    CAST(timezone('UTC', a.sent_at) AS DATE)                                AS sent_day,
    a.channel, a.purpose, a.template_id, a.experiment_id, a.variant, a.campaign_id, a.user_id, a.locale,
    a.country_iso2,
    c.iso3                                                                  AS country_iso3,
    c.name                                                                  AS country_name,
    c.region,
    a.provider_sid,
    a.provider_status,
    a.is_delivered,
    a.error_code,
    a.error_category,
    a.cost_usd,
    a.num_segments,
    a.encoding,
    a.fallback_of,
    a.fallback_of IS NOT NULL                                               AS is_fallback,
    a.fallback_event_id,
    conv.conversion_type,
    conv.occurred_at                                                        AS converted_at,
    (epoch(conv.occurred_at) - epoch(a.sent_at)) / 60.0                     AS minutes_to_conversion,
    coalesce((epoch(conv.occurred_at) - epoch(a.sent_at)) / 60.0 <= $conversion_window_minutes, false) AS converted
FROM attempts a
LEFT JOIN countries c ON c.iso2 = a.country_iso2
ASOF LEFT JOIN _scope_conversions conv ON conv.user_id = a.user_id AND conv.occurred_at >= a.sent_at
ORDER BY a.sent_at;

-- Internal (not an analyst view): the SMS-first chains that fell back to a call, joined to that
-- call. Every column of _attempt_facts (so any attempt_facts filter applies unchanged) plus the
-- fallback call's answer and start. A few % of the SMS attempts: analytics.fallback reads it
-- instead of re-scanning _attempt_facts for them (same rows, same join, built in the same refresh).
-- @table _fallback_chain_facts key=event_id day=sent_day
SELECT a.*, k.fb_is_answered, k.fb_started_at
FROM _scope_chain_attempts a
JOIN (SELECT event_id, is_answered AS fb_is_answered, started_at AS fb_started_at
      FROM _scope_chain_calls WHERE fallback_of IS NOT NULL) k
  ON k.event_id = a.fallback_event_id
WHERE a.channel = 'sms' AND NOT a.is_fallback AND a.fallback_event_id IS NOT NULL
ORDER BY a.sent_at;

-- Internal (not an analyst view): the numbers of the experiment members and variants the exposures
-- use. A member keeps its number forever (the incremental build adds new members after the largest
-- number, in (experiment_id, user_id) order; a full build keeps the numbers already given), so the
-- exposure rows of members a run does not touch never change. variant_index numbers the variants within
-- the experiment in sort order (small: recomputed every run; an experiment whose numbering changes has all
-- its members rebuilt).
-- @table _experiment_variants full
SELECT experiment_id, variant,
       CAST(dense_rank() OVER (PARTITION BY experiment_id ORDER BY variant) AS INTEGER) AS variant_index
FROM (SELECT DISTINCT experiment_id, variant FROM _attempt_facts
      WHERE experiment_id IS NOT NULL AND variant IS NOT NULL AND NOT is_fallback);

-- @table _experiment_members key=member append
SELECT n.experiment_id, n.user_id,
       CAST(coalesce((SELECT max(member) FROM _experiment_members), 0)
            + row_number() OVER (ORDER BY n.experiment_id, n.user_id) AS INTEGER) AS member
FROM (SELECT DISTINCT experiment_id, user_id FROM _scope_exposure_attempts
      WHERE experiment_id IS NOT NULL AND variant IS NOT NULL AND NOT is_fallback) n
ANTI JOIN _experiment_members m ON m.experiment_id = n.experiment_id AND m.user_id = n.user_id;

-- Internal (not an analyst view): the A/B exposures (attempts with an experiment and a variant, not
-- fallbacks), one row each, shaped for analytics/experiments_variant_metrics_exposures.sql so the
-- per-member GROUP BY works on integers: member numbers the (experiment_id, user_id) pairs
-- (_experiment_members); exposure_order orders a member's exposures by (sent_at, event_id) and is
-- unique over the table (member * 2^24 + the exposure's rank within its member), so a member's first
-- exposure among any filtered subset is its row with the smallest exposure_order (the order the
-- variant-metrics definition uses); variant_index numbers the variants within the experiment (a member
-- switched when min <> max); cost already adds the voice fallback the exposure triggered;
-- prev_sent_at / next_sent_at are the member's exposures just before and after, member_* the member's
-- totals over all its exposures (on every row; read on its first, is_first_exposure). With a period
-- as the only filter, a member whose exposures all fall inside it is read from member_* and one whose
-- only exposure there has both neighbours outside from that row: neither needs a GROUP BY. Filter
-- columns keep attempt_facts' names, so analytics.filters.where applies unchanged. The comment marks
-- this build's table; analytics.experiments reads it only while _attempt_facts carries a mark too (a
-- refresh by an older build replaces _attempt_facts, dropping its comment, and leaves this stale).
-- pre_conversions_28d: the CUPED covariate of the exposure (issue 19), the member's conversions (the
-- conversions table, any type, joined on user_id: only this key's own inputs) in the 28 days before it,
-- [sent_at - 28 days, sent_at); analytics.experiments.preperiod_data reads it off the member's first exposure
-- when its pre_days is the number in the column's name. It moves when a conversion is added or deleted
-- before a later exposure (ingest/incremental.py makes those members affected).
-- @table _experiment_exposures key=member day=sent_day
WITH pre AS (
    SELECT a.event_id, count(*) AS n
    FROM _scope_exposure_attempts a
    JOIN _scope_exposure_conversions c ON c.user_id = a.user_id
     AND c.occurred_at >= a.sent_at - INTERVAL 28 DAY AND c.occurred_at < a.sent_at
    WHERE a.experiment_id IS NOT NULL AND a.variant IS NOT NULL AND NOT a.is_fallback
    GROUP BY a.event_id
)
SELECT
    a.experiment_id,
    mem.member,
    CAST(mem.member AS BIGINT) * 16777216
        + row_number() OVER member_order                                                AS exposure_order,
    a.variant,
    v.variant_index,
    a.user_id,
    a.sent_at, a.sent_day, a.country_iso2, a.country_name, a.region, a.purpose, a.campaign_id,
    a.is_delivered,
    a.fallback_event_id IS NOT NULL                                                     AS fell_back,
    coalesce(a.cost_usd, 0) + coalesce(fb.cost_usd, 0)                                  AS cost,
    a.minutes_to_conversion,
    a.converted,
    lag(a.sent_at) OVER member_order                                                    AS prev_sent_at,
    lead(a.sent_at) OVER member_order                                                   AS next_sent_at,
    row_number() OVER member_order = 1                                                  AS is_first_exposure,
    min(a.sent_at) OVER member_rows                                                     AS member_first_at,
    max(a.sent_at) OVER member_rows                                                     AS member_last_at,
    count(*) OVER member_rows                                                           AS member_attempts,
    min(a.variant) OVER member_rows <> max(a.variant) OVER member_rows                  AS member_switched,
    sum(coalesce(a.cost_usd, 0) + coalesce(fb.cost_usd, 0)) OVER member_rows            AS member_cost,
    max(a.sent_day) OVER member_rows                                                    AS member_last_day,
    coalesce(p.n, 0)                                                                    AS pre_conversions_28d
FROM _scope_exposure_attempts a
JOIN _experiment_members mem ON mem.experiment_id = a.experiment_id AND mem.user_id = a.user_id
JOIN _experiment_variants v  ON v.experiment_id = a.experiment_id AND v.variant = a.variant
LEFT JOIN (SELECT event_id, cost_usd FROM _scope_exposure_fallbacks WHERE is_fallback) fb
       ON fb.event_id = a.fallback_event_id
LEFT JOIN pre p ON p.event_id = a.event_id
WHERE a.experiment_id IS NOT NULL AND a.variant IS NOT NULL AND NOT a.is_fallback
WINDOW member_rows AS (PARTITION BY a.experiment_id, a.user_id),
       member_order AS (PARTITION BY a.experiment_id, a.user_id ORDER BY a.sent_at, a.event_id)
ORDER BY a.sent_at;

-- Internal (not an analyst view): attempt_facts counted per UTC day and every column the
-- attempt-level analytics group or filter on (channel, country, purpose, template, variant,
-- encoding) and the outcome and fallback flags they count. Exact: counts and sums only (avg_segments =
-- segments / segmented). analytics._sql.rollup_where decides when a call can read it (plain
-- date periods, filters on these columns only); any other call reads attempt_facts.
-- @table _daily_attempt_rollup day=sent_day
SELECT
    sent_day, channel, country_iso2, purpose, template_id, variant, encoding,
    provider_status, is_delivered, converted, is_fallback,
    fallback_event_id IS NULL                                               AS no_fallback,
    count(*)                                                                AS n,
    sum(cost_usd)                                                           AS cost_usd,
    sum(num_segments)                                                       AS segments,
    count(num_segments)                                                     AS segmented
FROM _scope_attempt_days
GROUP BY ALL
ORDER BY sent_day;

-- Internal (not an analyst view): message_facts counted per UTC day and the columns the error
-- and insight analytics group or filter on. Exact: counts and sums only. Same rules as
-- _daily_attempt_rollup (analytics._sql.rollup_where).
-- @table _daily_message_rollup day=sent_day
SELECT
    sent_day, country_iso2, region, carrier, purpose, template_id, error_code, error_category,
    status, is_delivered, is_failed, is_pending,
    count(*)                                                                AS n,
    sum(cost_usd)                                                           AS cost_usd,
    sum(cost_usd * cost_usd)                                                AS cost_sq,
    count(cost_usd)                                                         AS priced
FROM _scope_message_days
GROUP BY ALL
ORDER BY sent_day;

-- Internal (not an analyst view): call_facts counted per UTC start day and the columns the voice
-- and country analytics group or filter on, and the outcome flags they count. Exact: counts and
-- sums only (durations are in _daily_call_duration_rollup). Same rules as _daily_attempt_rollup
-- (analytics._sql.rollup_where).
-- @table _daily_call_rollup day=start_day
SELECT
    start_day, country_iso2, region, carrier, purpose, template_id, status, is_answered, is_machine,
    count(*)                                                                AS n,
    sum(cost_usd)                                                           AS cost_usd
FROM _scope_call_days
GROUP BY ALL
ORDER BY start_day;

-- Internal (not an analyst view): completed calls counted per UTC start day, callee country
-- (region, carrier) and exact duration (whole seconds: a few hundred values), so the voice
-- duration quantiles are read off exact counts. Not keyed by purpose or template (that would
-- double its rows): a call filtered on those reads call_facts for the durations.
-- @table _daily_call_duration_rollup day=start_day
SELECT start_day, country_iso2, region, carrier, duration_s, count(*) AS n
FROM _scope_call_days
WHERE status = 'completed' AND duration_s IS NOT NULL
GROUP BY ALL
ORDER BY start_day;

-- Internal (not an analyst view): delivered SMS counted per UTC day, recipient country (region,
-- carrier) and exact delivery latency (whole seconds: a few hundred values), for
-- analytics.delivery.latency_by_country's exact quantiles. Not keyed by purpose or template:
-- a call filtered on those reads message_facts.
-- @table _daily_latency_rollup day=sent_day
SELECT sent_day, country_iso2, region, carrier, delivery_latency_s, count(*) AS n
FROM _scope_message_days
WHERE is_delivered AND delivery_latency_s IS NOT NULL
GROUP BY ALL
ORDER BY sent_day;

-- Internal (not an analyst view): SMS counted per UTC day, recipient country, purpose and number prefix:
-- the '+', the country's calling code and five more digits (a destination code of up to four digits and one
-- more digit), NULL when the country has no calling code. alerts.pumping's baseline: the watch's prefix (the
-- calling code, the destination code and one digit, from phonenumbers) is a left() of this one whenever it
-- is no longer, so it sums these rows instead of a string prefix per message over weeks of message_facts;
-- a longer one reads message_facts.
-- @table _daily_prefix_rollup day=sent_day
SELECT m.sent_day, m.country_iso2, m.purpose,
       left(m.to_number, CASE WHEN c.calling_code < 10 THEN 7 WHEN c.calling_code < 100 THEN 8
                              WHEN c.calling_code < 1000 THEN 9 END)  AS prefix,
       count(*)                                                         AS n
FROM _scope_message_days m
LEFT JOIN countries c ON c.iso2 = m.country_iso2
GROUP BY ALL
ORDER BY sent_day;

-- @finish
-- Rollup marker, written last: each internal table the analytics read instead of a view, and each
-- facts table such a table is built from, gets this comment. CREATE OR REPLACE drops a table's
-- comment, so a refresh by a build that does not (re)write these rollups (an older build) leaves a
-- facts table or a rollup without it, and analytics._sql.rollup_ready then reads the views. The
-- text must equal analytics._sql.ROLLUP_MARK (bump both when a rollup's columns change).
COMMENT ON TABLE _message_facts IS 'switchboard rollups v2';
COMMENT ON TABLE _call_facts IS 'switchboard rollups v2';
COMMENT ON TABLE _attempt_facts IS 'switchboard rollups v2';
COMMENT ON TABLE _fallback_chain_facts IS 'switchboard rollups v2';
COMMENT ON TABLE _daily_attempt_rollup IS 'switchboard rollups v2';
COMMENT ON TABLE _daily_message_rollup IS 'switchboard rollups v2';
COMMENT ON TABLE _daily_call_rollup IS 'switchboard rollups v2';
COMMENT ON TABLE _daily_call_duration_rollup IS 'switchboard rollups v2';
COMMENT ON TABLE _daily_latency_rollup IS 'switchboard rollups v2';
COMMENT ON TABLE _daily_prefix_rollup IS 'switchboard rollups v2';
COMMENT ON TABLE _experiment_exposures IS 'switchboard experiment exposures v4';
