-- voice_outcomes: call outcome counts, machine answers and cost per {key} (an allow-listed
-- expression or a constant). The durations of completed calls are voice_durations.sql.
-- Reads the calls relation: a counted relation (analytics._sql.counted: _daily_call_rollup or call_facts).
-- Output columns: key, calls, completed, busy, no_answer, failed, canceled, in_progress,
--                 machine_answered, cost_usd
WITH cells AS (  -- first the few (key, status, machine) cells: FILTERed sums over the rollup cost 3x more
    SELECT {key} AS key, status, is_machine, sum(n) AS n, sum(cost_usd) AS cost_usd
    FROM {calls}
    GROUP BY ALL
)
SELECT
    key,
    coalesce(sum(n), 0)::BIGINT                                                 AS calls,
    coalesce(sum(n) FILTER (WHERE status = 'completed'), 0)::BIGINT             AS completed,
    coalesce(sum(n) FILTER (WHERE status = 'busy'), 0)::BIGINT                  AS busy,
    coalesce(sum(n) FILTER (WHERE status = 'no-answer'), 0)::BIGINT             AS no_answer,
    coalesce(sum(n) FILTER (WHERE status = 'failed'), 0)::BIGINT                AS failed,
    coalesce(sum(n) FILTER (WHERE status = 'canceled'), 0)::BIGINT              AS canceled,
    coalesce(sum(n) FILTER (WHERE status NOT IN ('completed', 'busy', 'no-answer', 'failed', 'canceled')),
             0)::BIGINT                                                         AS in_progress,
    coalesce(sum(n) FILTER (WHERE status = 'completed' AND is_machine), 0)::BIGINT AS machine_answered,
    coalesce(sum(cost_usd), 0)                                                  AS cost_usd
FROM cells
GROUP BY key
ORDER BY calls DESC, key
