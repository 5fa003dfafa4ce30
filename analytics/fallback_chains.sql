-- fallback_chains: SMS-first attempt chains and their fallbacks, per {key}.
-- A chain starts with an SMS attempt that is not itself a fallback ({where} on attempt_facts
-- alias a); its fallback is the attempt whose fallback_of points to it, whenever it was sent.
-- Rescue time: seconds from the first SMS attempt to the start of the answered fallback call
-- (or, for an SMS fallback, to its delivered receipt). Only the few rescued chains are joined
-- to call_facts / message_facts, so the big scan stays a single-table aggregate.
-- {key}: country_iso2 or a constant for the total.
-- Output columns: key, sms_attempts, sms_delivered, fell_back, fell_back_to_voice,
--                 fallback_delivered, rescued, members_rescued, rescue_seconds_p50, rescue_seconds_p90
WITH chains AS (
    SELECT
        a.{key}                                          AS key,
        a.event_id, a.user_id, a.sent_at,
        coalesce(a.is_delivered, false)                  AS sms_delivered,
        a.fallback_event_id,
        b.channel                                        AS fb_channel,
        coalesce(b.is_delivered, false)                  AS fb_delivered,
        b.provider_sid                                   AS fb_sid
    FROM attempt_facts a
    LEFT JOIN (SELECT event_id, channel, is_delivered, provider_sid FROM attempt_facts WHERE is_fallback) b
           ON b.event_id = a.fallback_event_id
    WHERE {where} AND a.channel = 'sms' AND NOT a.is_fallback
),
rescued AS (
    SELECT c.key, c.user_id,
           coalesce(epoch(k.started_at), epoch(m.sent_at) + m.delivery_latency_s) - epoch(c.sent_at) AS seconds
    FROM chains c
    LEFT JOIN call_facts k    ON c.fb_channel = 'voice' AND k.sid = c.fb_sid
    LEFT JOIN message_facts m ON c.fb_channel = 'sms' AND m.sid = c.fb_sid
    WHERE NOT c.sms_delivered AND c.fb_delivered
),
counts AS (
    SELECT
        key,
        count(*)                                               AS sms_attempts,
        count(*) FILTER (WHERE sms_delivered)                  AS sms_delivered,
        count(fallback_event_id)                               AS fell_back,
        count(*) FILTER (WHERE fb_channel = 'voice')           AS fell_back_to_voice,
        count(*) FILTER (WHERE fb_delivered)                   AS fallback_delivered,
        count(*) FILTER (WHERE NOT sms_delivered AND fb_delivered) AS rescued
    FROM chains
    GROUP BY key
),
times AS (
    SELECT key, count(DISTINCT user_id) AS members_rescued,
           quantile_cont(seconds, 0.5) AS rescue_seconds_p50, quantile_cont(seconds, 0.9) AS rescue_seconds_p90
    FROM rescued
    GROUP BY key
)
SELECT c.*, coalesce(t.members_rescued, 0) AS members_rescued, t.rescue_seconds_p50, t.rescue_seconds_p90
FROM counts c
LEFT JOIN times t ON t.key IS NOT DISTINCT FROM c.key
ORDER BY c.sms_attempts DESC, c.key
