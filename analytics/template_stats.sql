-- template_stats: SMS attempts per template and variant (and {extra_key}, e.g. country),
-- with encoding, segments, outcomes, conversions and cost. avg_segments = segments / segmented
-- (attempts with a known segment count). A send refused at create time (no provider status, not
-- delivered) counts as failed.
-- Reads the attempts relation: a counted relation (analytics._sql.counted: _daily_attempt_rollup or attempt_facts).
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
FROM {attempts}
WHERE channel = 'sms'
GROUP BY ALL
ORDER BY messages DESC, template_id, variant
