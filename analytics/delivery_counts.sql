-- delivery_counts: SMS outcome counts from message_facts, one row per {key} (and period).
-- Fragments: {key} an allow-listed expression (or a constant), {period} a period label
-- expression, {where} from analytics.filters.where. Values are bound parameters.
-- Output columns: period, key, sent, delivered, undelivered, failed, pending, canceled, cost_usd
SELECT
    {period}                                        AS period,
    {key}                                           AS key,
    count(*)                                        AS sent,
    count(*) FILTER (WHERE is_delivered)            AS delivered,
    count(*) FILTER (WHERE status = 'undelivered')  AS undelivered,
    count(*) FILTER (WHERE status = 'failed')       AS failed,
    count(*) FILTER (WHERE is_pending)              AS pending,
    count(*) FILTER (WHERE status = 'canceled')     AS canceled,
    coalesce(sum(cost_usd), 0)                      AS cost_usd
FROM message_facts
WHERE {where}
GROUP BY ALL
ORDER BY ALL
