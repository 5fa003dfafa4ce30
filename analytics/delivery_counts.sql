-- delivery_counts: SMS outcome counts, one row per {key} (and period).
-- Reads the messages relation: a counted relation (analytics._sql.counted: _daily_message_rollup or message_facts).
-- Fragments: {key} an allow-listed expression (or a constant), {period} a period label
-- expression (a constant, or one on is_current). Values are bound parameters.
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
FROM {messages}
GROUP BY ALL
ORDER BY ALL
