-- country_overview: SMS and voice volume, outcomes and cost per recipient country.
-- Reads the messages relation and the calls relation: counted relations (analytics._sql.counted).
-- Output columns: country_iso2, country_iso3, country_name, region, sms_sent, sms_delivered,
--                 sms_failed, sms_cost_usd, voice_calls, voice_answered, voice_cost_usd
WITH sms AS (
    SELECT country_iso2,
           sum(n)::BIGINT                                          AS sms_sent,
           coalesce(sum(n) FILTER (WHERE is_delivered), 0)::BIGINT AS sms_delivered,
           coalesce(sum(n) FILTER (WHERE is_failed), 0)::BIGINT    AS sms_failed,
           coalesce(sum(cost_usd), 0)                              AS sms_cost_usd
    FROM {messages}
    GROUP BY country_iso2
),
voice AS (
    SELECT country_iso2,
           sum(n)::BIGINT                                          AS voice_calls,
           coalesce(sum(n) FILTER (WHERE is_answered), 0)::BIGINT  AS voice_answered,
           coalesce(sum(cost_usd), 0)                              AS voice_cost_usd
    FROM {calls}
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
