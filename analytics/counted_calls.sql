-- counted_calls: call_facts as a counted relation, one row per call with n = 1 (the columns of
-- _daily_call_rollup). Queries over calls read this or the rollup (analytics._sql.counted).
-- Fragments: {where} from analytics.filters.where, {current} the is_current expression (or NULL).
-- Output columns: every call_facts column, n, is_current
SELECT *, 1::BIGINT AS n, {current} AS is_current
FROM call_facts
WHERE {where}
