-- channel_evidence_rollup: channel_evidence answered from _daily_attempt_rollup (same
-- definitions and output; {where} from analytics._sql.rollup_where).
-- Output columns: country_iso2, channel, attempts, with_outcome, delivered, converted, cost_usd
SELECT
    country_iso2,
    channel,
    sum(n)::BIGINT                                                             AS attempts,
    coalesce(sum(n) FILTER (WHERE is_delivered IS NOT NULL), 0)::BIGINT        AS with_outcome,
    coalesce(sum(n) FILTER (WHERE is_delivered), 0)::BIGINT                    AS delivered,
    coalesce(sum(n) FILTER (WHERE converted AND no_fallback), 0)::BIGINT       AS converted,
    coalesce(sum(cost_usd), 0)                                                 AS cost_usd
FROM _daily_attempt_rollup
WHERE {where}
GROUP BY country_iso2, channel
