-- voice_outcomes_rollup: voice_outcomes with the counts from _daily_call_rollup ({where_r} from
-- analytics._sql.rollup_where) and the durations of completed calls from {durations}: a query giving
-- (key, x = duration, n = calls) over the same rows, on _daily_call_duration_rollup or call_facts.
-- Same definitions and output. {key} an allow-listed expression or a constant. Quantiles, for speed,
-- as latency_by_country.sql: the calls counted per exact duration (whole seconds), then quantile_cont's rule is read off
-- the cumulative counts: for n values x_0..x_(n-1), h = (n - 1) q,
-- x_floor(h) + (h - floor(h)) (x_ceil(h) - x_floor(h)); the value at rank r is the smallest x whose
-- cumulative count exceeds r. Exact, no sketch.
-- Output columns: key, calls, completed, busy, no_answer, failed, canceled, in_progress,
--                 machine_answered, duration_p50_s, duration_p90_s, duration_mean_s, cost_usd
--                 (the quantiles as two columns, not voice_outcomes' list: no list to convert)
WITH cells AS (  -- first the few (key, status, machine) cells: FILTERed sums over the rollup cost 3x more
    SELECT {key} AS key, status, is_machine, sum(n) AS n, sum(cost_usd) AS cost_usd
    FROM _daily_call_rollup
    WHERE {where_r}
    GROUP BY ALL
),
counts AS (
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
),
values_ AS (
    {durations}
),
ranked AS (
    SELECT key, x, n,
           sum(n) OVER (PARTITION BY key ORDER BY x ROWS UNBOUNDED PRECEDING)  AS cum,
           sum(n) OVER (PARTITION BY key)                                      AS total
    FROM values_
),
ends AS (
    SELECT key,
           any_value(h50)                                   AS h50,
           any_value(h90)                                   AS h90,
           min(x) FILTER (WHERE cum > floor(h50))           AS lo50,
           min(x) FILTER (WHERE cum > ceil(h50))            AS hi50,
           min(x) FILTER (WHERE cum > floor(h90))           AS lo90,
           min(x) FILTER (WHERE cum > ceil(h90))            AS hi90,
           sum(x * n) / sum(n)                              AS duration_mean_s
    FROM (SELECT *, (total - 1)::DOUBLE * 0.5 AS h50, (total - 1)::DOUBLE * 0.9 AS h90 FROM ranked)
    GROUP BY key
)
SELECT
    c.key, c.calls, c.completed, c.busy, c.no_answer, c.failed, c.canceled, c.in_progress, c.machine_answered,
    lo50 + (h50 - floor(h50)) * (hi50 - lo50)                                    AS duration_p50_s,
    lo90 + (h90 - floor(h90)) * (hi90 - lo90)                                    AS duration_p90_s,
    e.duration_mean_s,
    c.cost_usd
FROM counts c
LEFT JOIN ends e ON e.key IS NOT DISTINCT FROM c.key
ORDER BY c.calls DESC, c.key
