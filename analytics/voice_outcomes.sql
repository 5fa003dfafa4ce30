-- voice_outcomes: call outcomes, durations, machine answers and cost per {key}.
-- Output columns: key, calls, completed, busy, no_answer, failed,
--                 canceled, in_progress, machine_answered, duration_q ([p50, p90]),
--                 duration_mean_s, cost_usd
SELECT
    {key}                                                                   AS key,
    count(*)                                                                AS calls,
    count(*) FILTER (WHERE status = 'completed')                            AS completed,
    count(*) FILTER (WHERE status = 'busy')                                 AS busy,
    count(*) FILTER (WHERE status = 'no-answer')                            AS no_answer,
    count(*) FILTER (WHERE status = 'failed')                               AS failed,
    count(*) FILTER (WHERE status = 'canceled')                             AS canceled,
    count(*) FILTER (WHERE status NOT IN ('completed', 'busy', 'no-answer', 'failed', 'canceled')) AS in_progress,
    count(*) FILTER (WHERE status = 'completed' AND is_machine)             AS machine_answered,
    quantile_cont(duration_s, [0.5, 0.9]) FILTER (WHERE status = 'completed') AS duration_q,
    avg(duration_s) FILTER (WHERE status = 'completed')                     AS duration_mean_s,
    coalesce(sum(cost_usd), 0)                                              AS cost_usd
FROM call_facts
WHERE {where}
GROUP BY ALL
ORDER BY calls DESC, key
