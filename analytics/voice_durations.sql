-- voice_durations: completed calls counted per {key} and exact duration (whole seconds: a few
-- hundred values), for quantiles read off the cumulative counts with quantile_cont's rule
-- (analytics.stats_basic.quantiles_from_counts).
-- Reads the call_durations relation: a counted relation (analytics._sql.counted).
-- Output columns: key, x (duration_s), n
SELECT {key} AS key, duration_s AS x, sum(n)::BIGINT AS n
FROM {call_durations}
GROUP BY ALL
ORDER BY key, x
