-- delivery_counts_rollup: delivery_counts answered from _daily_message_rollup (same definitions
-- and output; {where} from analytics._sql.rollup_where; {key} an allow-listed expression on the
-- rollup's columns or a constant, {period} a period label on sent_day).
-- Output columns: period, key, sent, delivered, undelivered, failed, pending, canceled, cost_usd
SELECT
    {period}                                                            AS period,
    {key}                                                               AS key,
    coalesce(sum(n), 0)::BIGINT                                         AS sent,
    coalesce(sum(n) FILTER (WHERE is_delivered), 0)::BIGINT             AS delivered,
    coalesce(sum(n) FILTER (WHERE status = 'undelivered'), 0)::BIGINT   AS undelivered,
    coalesce(sum(n) FILTER (WHERE status = 'failed'), 0)::BIGINT        AS failed,
    coalesce(sum(n) FILTER (WHERE is_pending), 0)::BIGINT               AS pending,
    coalesce(sum(n) FILTER (WHERE status = 'canceled'), 0)::BIGINT      AS canceled,
    coalesce(sum(cost_usd), 0)                                          AS cost_usd
FROM _daily_message_rollup
WHERE {where}
GROUP BY ALL
ORDER BY ALL
