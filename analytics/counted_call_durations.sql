-- counted_call_durations: completed calls with a duration, one row each with n = 1 (the rows
-- _daily_call_duration_rollup counts). Queries over call_durations read this or the rollup.
-- Fragments: {where} from analytics.filters.where, {current} the is_current expression (or NULL).
-- Output columns: every call_facts column, n, is_current
SELECT *, 1::BIGINT AS n, {current} AS is_current
FROM call_facts
WHERE {where} AND status = 'completed' AND duration_s IS NOT NULL
