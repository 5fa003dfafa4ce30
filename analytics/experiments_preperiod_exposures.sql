-- experiments_preperiod.sql answered from _experiment_exposures (ingest/facts.sql): the same output
-- columns, the same rows, the same definitions (see that file's header), without grouping strings or
-- joining the conversions at page time. The covariate is read off the member's first exposure (the
-- one with the smallest exposure_order among the rows the filters keep): facts.sql counts each
-- exposure's pre-period conversions in {x_column} when it builds the table. As in
-- experiments_variant_metrics_exposures.sql, with the period as the only filter {whole} picks the first
-- exposure of members whose exposures all lie in the period and {single} the rows that are their
-- member's only exposure in it; only the other members go through the GROUP BY.
--
-- Fragments filled by analytics.experiments.data (never user input):
--   {where}     WHERE clause from analytics.filters.where (alias a), on columns this table keeps
--   {x_column}  the allow-listed pre-period column (pre_conversions_<days>d) of _experiment_exposures
--   {whole}     `false`, or the all-exposures-in-the-period condition on alias a
--   {single}    `false`, or the only-exposure-in-the-period condition on alias a
--   {opt_out}   as in experiments_preperiod.sql (reads firsts u: user_id, first_at)
-- Bound parameters: $experiment_id, $window_minutes (DOUBLE or NULL), $f_start / $f_end from {where}.
--
-- Output: as experiments_preperiod.sql.
WITH kept AS (
    SELECT a.*
    FROM _experiment_exposures a
    WHERE a.experiment_id = $experiment_id
      AND {where}
),
per_member AS (
    SELECT a.member, min(a.exposure_order) AS first_order
    FROM kept a
    WHERE NOT ({whole}) AND NOT ({single})
    GROUP BY a.member
),
first_rows AS (
    SELECT f.* FROM per_member m JOIN kept f ON f.exposure_order = m.first_order
    UNION ALL
    SELECT a.* FROM kept a WHERE NOT ({whole}) AND ({single})
    UNION ALL
    SELECT a.* FROM kept a WHERE a.is_first_exposure AND ({whole})
),
firsts AS (
    SELECT
        f.user_id,
        f.sent_at                                   AS first_at,
        f.variant,
        f.country_iso2                              AS segment,
        f.country_name                              AS segment_name,
        CAST(CASE WHEN CAST($window_minutes AS DOUBLE) IS NULL THEN coalesce(f.converted, false)
                  ELSE coalesce(f.minutes_to_conversion <= CAST($window_minutes AS DOUBLE), false)
             END AS INTEGER)                        AS y,
        f.{x_column}                                AS x
    FROM first_rows f
),
opted AS (
    {opt_out}
)
SELECT
    u.variant,
    u.segment,
    any_value(u.segment_name)                       AS segment_name,
    count(*)                                        AS users,
    sum(u.y)                                        AS y_sum,
    sum(u.x)                                        AS x_sum,
    sum(u.x * u.x)                                  AS x_sum_squares,
    sum(u.x * u.y)                                  AS xy_sum,
    count(*) FILTER (WHERE u.x > 0)                 AS pre_users,
    count(o.user_id)                                AS opt_out_users
FROM firsts u
LEFT JOIN opted o ON o.user_id = u.user_id
GROUP BY u.variant, u.segment
ORDER BY u.variant, u.segment
