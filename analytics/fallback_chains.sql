-- fallback_chains: SMS-first attempt chains and their fallbacks, per {key}.
-- A chain starts with an SMS attempt that is not itself a fallback ({where} on attempt_facts
-- alias a); its fallback is the attempt whose fallback_of points to it, whenever it was sent.
-- Success time: SMS delivered -> its delivered receipt (sent_at + delivery latency); else the
-- fallback delivered -> the call's start (or, for an SMS fallback, its delivered receipt).
-- {key}: country_iso2 or a constant for the total.
-- Output columns: key, country_name, sms_attempts, sms_delivered, fell_back,
--                 fell_back_to_voice, fallback_delivered, rescued, members_rescued,
--                 seconds_to_success_p50, seconds_to_success_p90, rescue_seconds_p50, rescue_seconds_p90
WITH firsts AS (
    SELECT a.event_id, a.country_iso2, a.country_name, a.user_id, a.sent_at, a.provider_sid,
           coalesce(a.is_delivered, false) AS sms_delivered, a.fallback_event_id
    FROM attempt_facts a
    WHERE {where} AND a.channel = 'sms' AND NOT a.is_fallback
),
chains AS (
    SELECT f.*, b.channel AS fb_channel, coalesce(b.is_delivered, false) AS fb_delivered,
           b.provider_sid AS fb_sid
    FROM firsts f
    LEFT JOIN attempt_facts b ON b.event_id = f.fallback_event_id
),
success AS (
    -- only chains that succeeded need a time; the joins touch those rows only
    SELECT c.event_id,
           CASE WHEN c.sms_delivered THEN epoch(m.sent_at) + m.delivery_latency_s
                WHEN c.fb_channel = 'voice' THEN epoch(k.started_at)
                ELSE epoch(m2.sent_at) + m2.delivery_latency_s END - epoch(c.sent_at) AS seconds_to_success
    FROM chains c
    LEFT JOIN message_facts m  ON c.sms_delivered AND m.sid = c.provider_sid
    LEFT JOIN call_facts k     ON NOT c.sms_delivered AND c.fb_channel = 'voice' AND k.sid = c.fb_sid
    LEFT JOIN message_facts m2 ON NOT c.sms_delivered AND c.fb_channel = 'sms' AND m2.sid = c.fb_sid
    WHERE c.sms_delivered OR c.fb_delivered
),
timed AS (
    SELECT c.*, s.seconds_to_success
    FROM chains c LEFT JOIN success s ON s.event_id = c.event_id
)
SELECT
    {key}                                                                          AS key,
    any_value(country_name)                                                        AS country_name,
    count(*)                                                                       AS sms_attempts,
    count(*) FILTER (WHERE sms_delivered)                                          AS sms_delivered,
    count(*) FILTER (WHERE fallback_event_id IS NOT NULL)                          AS fell_back,
    count(*) FILTER (WHERE fb_channel = 'voice')                                   AS fell_back_to_voice,
    count(*) FILTER (WHERE fb_delivered)                                           AS fallback_delivered,
    count(*) FILTER (WHERE NOT sms_delivered AND fb_delivered)                     AS rescued,
    count(DISTINCT user_id) FILTER (WHERE NOT sms_delivered AND fb_delivered)      AS members_rescued,
    quantile_cont(seconds_to_success, 0.5)                                         AS seconds_to_success_p50,
    quantile_cont(seconds_to_success, 0.9)                                         AS seconds_to_success_p90,
    quantile_cont(seconds_to_success, 0.5) FILTER (WHERE NOT sms_delivered)        AS rescue_seconds_p50,
    quantile_cont(seconds_to_success, 0.9) FILTER (WHERE NOT sms_delivered)        AS rescue_seconds_p90
FROM timed
GROUP BY ALL
ORDER BY sms_attempts DESC, key
