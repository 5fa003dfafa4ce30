-- fallback_chains: SMS-first attempt chains and their fallbacks, per {key}.
-- A chain starts with an SMS attempt that is not itself a fallback ({where} on attempt_facts
-- alias a); its fallback is the attempt whose fallback_of points to it, whenever it was sent.
-- Shape, for speed: the chain counts are one single-table aggregate; only the few chains that
-- did fall back are joined to their fallback call (call_facts.event_id), which also gives
-- the time to success. fell_back counts a fallback on any channel; the fallback columns
-- (fell_back_to_voice, fallback_delivered, rescued) describe voice fallbacks.
-- Rescue time: seconds from the first SMS attempt to the start of the answered fallback call.
-- {fell_from}: where those chains are read (analytics.fallback.FELL_FROM_FACTS: attempt_facts a
-- joined to call_facts; or the same rows pre-joined at refresh, _fallback_chain_facts a).
-- The chain counts read the attempts relation, a counted relation (analytics._sql.counted: _daily_attempt_rollup
-- or attempt_facts with the same period and filters as {where}).
-- {key}: country_iso2, or channel (always 'sms' here) for one total row.
-- Output columns: key, sms_attempts, sms_delivered, fell_back, fell_back_to_voice,
--                 fallback_delivered, rescued, members_rescued, rescue_seconds_p50, rescue_seconds_p90
WITH counts AS (
    SELECT a.{key}                                                  AS key,
           sum(a.n)::BIGINT                                         AS sms_attempts,
           coalesce(sum(a.n) FILTER (WHERE a.is_delivered), 0)::BIGINT AS sms_delivered,
           coalesce(sum(a.n) FILTER (WHERE NOT a.no_fallback), 0)::BIGINT AS fell_back
    FROM {attempts} a
    WHERE a.channel = 'sms' AND NOT a.is_fallback
    GROUP BY ALL
),
fell AS (
    -- voice fallbacks: the call of the fallback attempt. Joined on the SMS attempt's
    -- fallback_event_id (NULL for almost every row, so the scan stays cheap), not on event_id.
    SELECT a.{key}                                     AS key,
           a.user_id,
           coalesce(a.is_delivered, false)             AS sms_delivered,
           'voice'                                     AS fb_channel,
           fb_is_answered                              AS fb_delivered,
           epoch(fb_started_at) - epoch(a.sent_at)     AS seconds
    FROM {fell_from}
    WHERE {where} AND a.channel = 'sms' AND NOT a.is_fallback AND a.fallback_event_id IS NOT NULL
),
rescued AS (
    SELECT key, user_id, seconds FROM fell WHERE NOT sms_delivered AND fb_delivered
),
fallbacks AS (
    SELECT key,
           count(*) FILTER (WHERE fb_channel = 'voice')                 AS fell_back_to_voice,
           count(*) FILTER (WHERE fb_delivered)                         AS fallback_delivered,
           count(*) FILTER (WHERE NOT sms_delivered AND fb_delivered)   AS rescued
    FROM fell
    GROUP BY key
),
times AS (
    SELECT key, count(DISTINCT user_id) AS members_rescued,
           quantile_cont(seconds, 0.5) AS rescue_seconds_p50, quantile_cont(seconds, 0.9) AS rescue_seconds_p90
    FROM rescued
    GROUP BY key
)
SELECT c.key, c.sms_attempts, c.sms_delivered, c.fell_back,
       coalesce(f.fell_back_to_voice, 0)   AS fell_back_to_voice,
       coalesce(f.fallback_delivered, 0)   AS fallback_delivered,
       coalesce(f.rescued, 0)              AS rescued,
       coalesce(t.members_rescued, 0)      AS members_rescued,
       t.rescue_seconds_p50, t.rescue_seconds_p90
FROM counts c
LEFT JOIN fallbacks f ON f.key IS NOT DISTINCT FROM c.key
LEFT JOIN times t     ON t.key IS NOT DISTINCT FROM c.key
ORDER BY c.sms_attempts DESC, c.key
