-- country_overview: SMS and voice volume, outcomes and cost per recipient country.
-- Fragments: {where_m} (message_facts), {where_c} (call_facts).
-- Output columns: country_iso2, country_iso3, country_name, region, sms_sent, sms_delivered,
--                 sms_failed, sms_cost_usd, voice_calls, voice_answered, voice_cost_usd
WITH sms AS (
    SELECT country_iso2,
           count(*)                                  AS sms_sent,
           count(*) FILTER (WHERE is_delivered)      AS sms_delivered,
           count(*) FILTER (WHERE is_failed)         AS sms_failed,
           coalesce(sum(cost_usd), 0)                AS sms_cost_usd
    FROM message_facts
    WHERE {where_m}
    GROUP BY country_iso2
),
voice AS (
    SELECT country_iso2,
           count(*)                                  AS voice_calls,
           count(*) FILTER (WHERE is_answered)       AS voice_answered,
           coalesce(sum(cost_usd), 0)                AS voice_cost_usd
    FROM call_facts
    WHERE {where_c}
    GROUP BY country_iso2
)
SELECT
    coalesce(s.country_iso2, v.country_iso2)         AS country_iso2,
    c.iso3                                           AS country_iso3,
    c.name                                           AS country_name,
    c.region,
    coalesce(s.sms_sent, 0)                          AS sms_sent,
    coalesce(s.sms_delivered, 0)                     AS sms_delivered,
    coalesce(s.sms_failed, 0)                        AS sms_failed,
    coalesce(s.sms_cost_usd, 0)                      AS sms_cost_usd,
    coalesce(v.voice_calls, 0)                       AS voice_calls,
    coalesce(v.voice_answered, 0)                    AS voice_answered,
    coalesce(v.voice_cost_usd, 0)                    AS voice_cost_usd
FROM sms s
FULL OUTER JOIN voice v ON v.country_iso2 IS NOT DISTINCT FROM s.country_iso2
LEFT JOIN countries c ON c.iso2 = coalesce(s.country_iso2, v.country_iso2)
