-- channel_evidence: per country and channel, first attempts and fallbacks with their outcomes
-- and conversions. A conversion is credited to an attempt only when that attempt did not
-- trigger a fallback (otherwise the fallback, not this attempt, may have reached the member).
-- Reads the attempts relation: a counted relation (analytics._sql.counted: _daily_attempt_rollup or attempt_facts).
-- Output columns: country_iso2, channel, attempts, with_outcome, delivered, converted, cost_usd
SELECT
    country_iso2,
    channel,
    sum(n)::BIGINT                                                             AS attempts,
    coalesce(sum(n) FILTER (WHERE is_delivered IS NOT NULL), 0)::BIGINT        AS with_outcome,
    coalesce(sum(n) FILTER (WHERE is_delivered), 0)::BIGINT                    AS delivered,
    coalesce(sum(n) FILTER (WHERE converted AND no_fallback), 0)::BIGINT       AS converted,
    coalesce(sum(cost_usd), 0)                                                 AS cost_usd
FROM {attempts}
GROUP BY country_iso2, channel
