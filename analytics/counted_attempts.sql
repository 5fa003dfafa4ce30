-- counted_attempts: attempt_facts as a counted relation, one row per attempt with n = 1 and the
-- columns of _daily_attempt_rollup computed per row (ingest/facts.sql builds that rollup by summing
-- exactly these). Queries over attempts read this or the rollup (analytics._sql.counted).
-- Fragments: {where} from analytics.filters.where, {current} the is_current expression (or NULL).
-- Output columns: every attempt_facts column, no_fallback, n, segments, segmented, is_current
SELECT *,
       fallback_event_id IS NULL              AS no_fallback,
       1::BIGINT                              AS n,
       num_segments                           AS segments,
       (num_segments IS NOT NULL)::BIGINT     AS segmented,
       {current}                              AS is_current
FROM attempt_facts
WHERE {where}
