-- latency_counts: delivered SMS counted per recipient country and exact delivery latency (whole
-- seconds: a few hundred values per country), for quantiles read off the cumulative counts
-- (analytics.stats_basic.quantiles_from_counts).
-- Reads the latencies relation: a counted relation (analytics._sql.counted).
-- Output columns: country_iso2, x (delivery_latency_s), n
SELECT country_iso2, delivery_latency_s AS x, sum(n)::BIGINT AS n
FROM {latencies}
GROUP BY ALL
ORDER BY country_iso2, x
