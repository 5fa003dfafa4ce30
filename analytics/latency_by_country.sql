-- latency_by_country: seconds from sent to delivered, per recipient country (delivered SMS only).
-- Output columns: country_iso2, delivered, latency_q ([p50, p90], split in Python), latency_mean_s
SELECT
    country_iso2,
    count(*)                                         AS delivered,
    quantile_cont(delivery_latency_s, [0.5, 0.9])    AS latency_q,   -- one sort for both quantiles
    avg(delivery_latency_s)                          AS latency_mean_s
FROM message_facts
WHERE {where} AND is_delivered AND delivery_latency_s IS NOT NULL
GROUP BY country_iso2
ORDER BY delivered DESC, country_iso2
