-- latency_by_country: seconds from sent to delivered, per recipient country (delivered SMS only).
-- Shape, for speed: one GROUP BY (country, latency value) counts the messages per exact value
-- (receipts have whole-second timestamps: a few hundred values per country), then the
-- quantiles are read off the cumulative counts with quantile_cont's own rule: for n values
-- sorted x_0..x_(n-1), position h = (n - 1) q, x_floor(h) + (h - floor(h)) (x_ceil(h) - x_floor(h)).
-- The value at rank r is the smallest x whose cumulative count exceeds r. Exact, no sketch.
-- Fragment {values}: (country_iso2, x = latency, n = messages) of the delivered SMS, counted on
-- message_facts or summed on _daily_latency_rollup (analytics.delivery.latency_by_country).
-- Output columns: country_iso2, delivered, latency_q ([p50, p90], split in Python), latency_mean_s
WITH values_ AS (
    {values}
),
ranked AS (
    SELECT country_iso2, x, n,
           sum(n) OVER (PARTITION BY country_iso2 ORDER BY x ROWS UNBOUNDED PRECEDING)  AS cum,
           sum(n) OVER (PARTITION BY country_iso2)                                      AS total
    FROM values_
),
positions AS (
    SELECT *, (total - 1)::DOUBLE * 0.5 AS h50, (total - 1)::DOUBLE * 0.9 AS h90 FROM ranked
),
ends AS (
    SELECT country_iso2,
           any_value(total)                                     AS delivered,
           any_value(h50)                                       AS h50,
           any_value(h90)                                       AS h90,
           min(x) FILTER (WHERE cum > floor(h50))               AS lo50,
           min(x) FILTER (WHERE cum > ceil(h50))                AS hi50,
           min(x) FILTER (WHERE cum > floor(h90))               AS lo90,
           min(x) FILTER (WHERE cum > ceil(h90))                AS hi90,
           sum(x * n) / sum(n)                                  AS latency_mean_s
    FROM positions
    GROUP BY country_iso2
)
SELECT
    country_iso2,
    delivered::BIGINT                                                              AS delivered,
    [lo50 + (h50 - floor(h50)) * (hi50 - lo50), lo90 + (h90 - floor(h90)) * (hi90 - lo90)] AS latency_q,
    latency_mean_s
FROM ends
ORDER BY delivered DESC, country_iso2
