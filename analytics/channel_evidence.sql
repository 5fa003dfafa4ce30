-- channel_evidence: per country and channel, first attempts and fallbacks with their outcomes
-- and conversions. A conversion is credited to an attempt only when that attempt did not
-- trigger a fallback (otherwise the fallback, not this attempt, may have reached the member).
-- Output columns: country_iso2, channel, attempts, with_outcome, delivered,
--                 converted, cost_usd
SELECT
    country_iso2,
    channel,
    count(*)                                                                   AS attempts,
    count(*) FILTER (WHERE is_delivered IS NOT NULL)                           AS with_outcome,
    count(*) FILTER (WHERE is_delivered)                                       AS delivered,
    count(*) FILTER (WHERE converted AND fallback_event_id IS NULL)            AS converted,
    coalesce(sum(cost_usd), 0)                                                 AS cost_usd
FROM attempt_facts
WHERE {where}
GROUP BY country_iso2, channel
