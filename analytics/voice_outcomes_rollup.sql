-- voice_outcomes_rollup: voice_outcomes' counts and cost from _daily_call_rollup ({where_r} from
-- analytics._sql.rollup_where). The durations of completed calls are not in this query: analytics.voice
-- reads them as (key, duration, calls) from _daily_call_duration_rollup (or call_facts) and takes
-- quantile_cont's rule off the cumulative counts in numpy (analytics.stats_basic.quantiles_from_counts): the
-- same values, without a window over every (key, duration) pair.
-- {key} an allow-listed expression or a constant.
-- Output columns: key, calls, completed, busy, no_answer, failed, canceled, in_progress,
--                 machine_answered, cost_usd
WITH cells AS (  -- first the few (key, status, machine) cells: FILTERed sums over the rollup cost 3x more
    SELECT {key} AS key, status, is_machine, sum(n) AS n, sum(cost_usd) AS cost_usd
    FROM _daily_call_rollup
    WHERE {where_r}
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
