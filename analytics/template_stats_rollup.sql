-- template_stats_rollup: template_stats answered from _daily_attempt_rollup (same definitions
-- and output; {where} from analytics._sql.rollup_where; avg_segments = segments / segmented).
-- Output columns: template_id, variant, extra_key, messages, ucs2_messages, known_encoding,
--                 avg_segments, delivered, failed, converted, cost_usd
SELECT
    template_id,
    variant,
    {extra_key}                                                                      AS extra_key,
    sum(n)::BIGINT                                                                   AS messages,
    coalesce(sum(n) FILTER (WHERE encoding = 'UCS-2'), 0)::BIGINT                    AS ucs2_messages,
    coalesce(sum(n) FILTER (WHERE encoding IS NOT NULL), 0)::BIGINT                  AS known_encoding,
    CASE WHEN sum(segmented) > 0 THEN sum(segments)::DOUBLE / sum(segmented) END     AS avg_segments,
    coalesce(sum(n) FILTER (WHERE is_delivered), 0)::BIGINT                          AS delivered,
    coalesce(sum(n) FILTER (WHERE provider_status IN ('undelivered', 'failed')
                               OR (provider_status IS NULL AND NOT is_delivered)), 0)::BIGINT AS failed,
    coalesce(sum(n) FILTER (WHERE converted), 0)::BIGINT                             AS converted,
    coalesce(sum(cost_usd), 0)                                                       AS cost_usd
FROM _daily_attempt_rollup
WHERE {where} AND channel = 'sms'
GROUP BY ALL
ORDER BY messages DESC, template_id, variant
