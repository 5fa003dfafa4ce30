-- delivery_by_channel_rollup: delivery_by_channel answered from _daily_attempt_rollup (same
-- definitions and output; {where} from analytics._sql.rollup_where).
-- Output columns: key, sent, delivered, undelivered, failed, pending, canceled, cost_usd
WITH counts AS (
    SELECT
        channel                                                                          AS key,
        sum(n)::BIGINT                                                                   AS sent,
        coalesce(sum(n) FILTER (WHERE is_delivered), 0)::BIGINT                          AS delivered,
        coalesce(sum(n) FILTER (WHERE provider_status = 'undelivered'), 0)::BIGINT       AS undelivered,
        coalesce(sum(n) FILTER (WHERE provider_status IN ('failed', 'busy', 'no-answer')
                                   OR (channel = 'voice' AND provider_status = 'canceled')
                                   OR (provider_status IS NULL AND NOT is_delivered)), 0)::BIGINT AS failed,
        coalesce(sum(n) FILTER (WHERE channel <> 'voice' AND provider_status = 'canceled'), 0)::BIGINT AS canceled,
        coalesce(sum(cost_usd), 0)                                                       AS cost_usd
    FROM _daily_attempt_rollup
    WHERE {where}
    GROUP BY ALL
)
SELECT 'all' AS period, key, sent, delivered, undelivered, failed,
       sent - delivered - undelivered - failed - canceled AS pending, canceled, cost_usd
FROM counts
ORDER BY key
