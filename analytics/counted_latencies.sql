-- counted_latencies: delivered SMS with a delivery latency, one row each with n = 1 (the rows
-- _daily_latency_rollup counts). Queries over latencies read this or the rollup.
-- Fragments: {where} from analytics.filters.where, {current} the is_current expression (or NULL).
-- Output columns: every message_facts column, n, is_current
SELECT *, 1::BIGINT AS n, {current} AS is_current
FROM message_facts
WHERE {where} AND is_delivered AND delivery_latency_s IS NOT NULL
