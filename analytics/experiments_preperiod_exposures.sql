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
--   {opt_out}   the allow-listed opt-out replies: (user_id, last_at) per member who replied 'opt_out' in the
--               experiment, last_at the last such reply (counted when at or after the first exposure, as in
--               experiments_preperiod.sql), or an empty SELECT without _response_facts
-- Bound parameters: $experiment_id, $window_minutes (DOUBLE or NULL), $f_start / $f_end from {where}.
--
-- Output: as experiments_preperiod.sql.
WITH per_member AS (
    SELECT a.member, min(a.exposure_order) AS first_order
    FROM _experiment_exposures a
    WHERE a.experiment_id = $experiment_id
      AND {where}
      AND NOT ({whole})
      AND NOT ({single})
    GROUP BY a.member
),
firsts AS (
    SELECT f.user_id, f.sent_at, f.variant, f.country_iso2, f.country_name, f.converted, f.minutes_to_conversion,
           f.{x_column} AS x
    FROM per_member m
    -- the first exposure passes the filters too: reading only the rows that do skips the other row groups
    JOIN (SELECT a.* FROM _experiment_exposures a WHERE a.experiment_id = $experiment_id AND {where}) f
      ON f.exposure_order = m.first_order
    UNION ALL
    SELECT a.user_id, a.sent_at, a.variant, a.country_iso2, a.country_name, a.converted, a.minutes_to_conversion,
           a.{x_column}
    FROM _experiment_exposures a
    WHERE a.experiment_id = $experiment_id
      AND {where}
      AND NOT ({whole})
      AND ({single})
    UNION ALL
    SELECT a.user_id, a.sent_at, a.variant, a.country_iso2, a.country_name, a.converted, a.minutes_to_conversion,
           a.{x_column}
    FROM _experiment_exposures a
    WHERE a.experiment_id = $experiment_id
      AND {where}
      AND a.is_first_exposure
      AND ({whole})
),
units AS (
    SELECT
        u.variant,
        u.country_iso2                                                  AS segment,
        u.country_name                                                  AS segment_name,
        CAST(CASE WHEN CAST($window_minutes AS DOUBLE) IS NULL THEN coalesce(u.converted, false)
                  ELSE coalesce(u.minutes_to_conversion <= CAST($window_minutes AS DOUBLE), false)
             END AS INTEGER)                                            AS y,
        u.x,
        coalesce(o.last_at >= u.sent_at, false)                         AS opted_out
    FROM firsts u
    LEFT JOIN ({opt_out}) o ON o.user_id = u.user_id
)
SELECT
    variant,
    segment,
    any_value(segment_name)                         AS segment_name,
    count(*)                                        AS users,
    sum(y)                                          AS y_sum,
    sum(x)                                          AS x_sum,
    sum(x * x)                                      AS x_sum_squares,
    sum(x * y)                                      AS xy_sum,
    count(*) FILTER (WHERE x > 0)                   AS pre_users,
    count(*) FILTER (WHERE opted_out)               AS opt_out_users
FROM units
GROUP BY variant, segment
ORDER BY variant, segment
