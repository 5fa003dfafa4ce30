-- experiments_variant_metrics.sql answered from _experiment_exposures (ingest/facts.sql): the same
-- output columns, the same rows, the same definitions (see that file's header), computed with
-- integers: the per-member GROUP BY is on `member` (one number per experiment_id, user_id) and keeps
-- only numeric aggregates; the member's first exposure (smallest exposure_order among the rows
-- the filters keep, i.e. the first by sent_at then event_id) is then fetched by a join on
-- exposure_order. Cost already includes the fallbacks each exposure triggered. When the only
-- filters are the period and the experiment, two kinds of member skip the GROUP BY: {whole} picks
-- the first exposure of members whose exposures all lie in the period (their member_* totals are
-- the answer: a long period), {single} the rows that are their member's only exposure in it (both
-- neighbours, prev_sent_at and next_sent_at, outside: a short one); with other filters both are `false`.
--
-- Fragments filled by analytics.experiments (never user input):
--   {where}    WHERE clause from analytics.filters.where (alias a), on columns this table keeps
--   {segment}  an allow-listed expression on the first exposure (alias f), or NULL
--   {whole}    `false`, or the all-exposures-in-the-period condition on alias a
--   {single}   `false`, or the only-exposure-in-the-period condition on alias a
--   {x}        the CUPED covariate of the first exposure (issue 19): `f.pre_conversions_<days>d`, or 0
--   {cuped}    empty, or the output columns of the CUPED sums (data._CUPED_SUMS) over x and converted
-- Bound parameters: as experiments_variant_metrics.sql ($f_start / $f_end from {where}).
--
-- Output columns: experiment_id, segment, segment_name, variant, users,
--   delivery_known_users, delivered_users, conversions, fallback_users, attempts,
--   switched_users, cost_sum, cost_sum_squares, cost_conversion_sum_product,
--   time_to_convert_sum, time_to_convert_sum_squares, first_day, last_day
WITH per_member AS (
    SELECT
        a.member,
        min(a.exposure_order)                                       AS first_order,
        count(*)                                                    AS attempts,
        min(a.variant_index) <> max(a.variant_index)                AS switched,
        sum(a.cost)                                                 AS cost,
        max(a.sent_day)                                             AS last_day
    FROM _experiment_exposures a
    WHERE ($all_experiments OR list_contains($experiment_ids, a.experiment_id))
      AND {where}
      AND NOT ({whole})
      AND NOT ({single})
    GROUP BY a.member
),
units AS (
    SELECT
        f.experiment_id,
        f.variant,
        {segment}                                                   AS segment,
        {segment_name}                                              AS segment_name,
        f.is_delivered,
        f.fell_back,
        CASE WHEN CAST($window_minutes AS DOUBLE) IS NULL THEN coalesce(f.converted, false)
             ELSE coalesce(f.minutes_to_conversion <= CAST($window_minutes AS DOUBLE), false)
        END                                                         AS converted,
        f.minutes_to_conversion,
        f.sent_day                                                  AS first_day,
        m.last_day,
        m.attempts,
        m.switched,
        m.cost,
        {x}                                                         AS x
    FROM per_member m
    -- the first exposure passes the filters too: reading only the rows that do skips the other row groups
    JOIN (SELECT a.* FROM _experiment_exposures a WHERE {where}) f ON f.exposure_order = m.first_order
    UNION ALL
    SELECT
        f.experiment_id,
        f.variant,
        {segment},
        {segment_name},
        f.is_delivered,
        f.fell_back,
        CASE WHEN CAST($window_minutes AS DOUBLE) IS NULL THEN coalesce(f.converted, false)
             ELSE coalesce(f.minutes_to_conversion <= CAST($window_minutes AS DOUBLE), false)
        END,
        f.minutes_to_conversion,
        f.sent_day,
        f.sent_day,
        1,
        false,
        f.cost,
        {x}
    FROM (SELECT a.*
          FROM _experiment_exposures a
          WHERE ($all_experiments OR list_contains($experiment_ids, a.experiment_id))
            AND {where}
            AND NOT ({whole})
            AND ({single})) f
    UNION ALL
    SELECT
        f.experiment_id,
        f.variant,
        {segment},
        {segment_name},
        f.is_delivered,
        f.fell_back,
        CASE WHEN CAST($window_minutes AS DOUBLE) IS NULL THEN coalesce(f.converted, false)
             ELSE coalesce(f.minutes_to_conversion <= CAST($window_minutes AS DOUBLE), false)
        END,
        f.minutes_to_conversion,
        f.sent_day,
        f.member_last_day,
        f.member_attempts,
        f.member_switched,
        f.member_cost,
        {x}
    FROM (SELECT a.*
          FROM _experiment_exposures a
          WHERE ($all_experiments OR list_contains($experiment_ids, a.experiment_id))
            AND {where}
            AND a.is_first_exposure
            AND ({whole})) f
)
SELECT
    experiment_id,
    segment,
    any_value(segment_name)                                             AS segment_name,
    variant,
    count(*)                                                            AS users,
    count(is_delivered)                                                 AS delivery_known_users,
    count(*) FILTER (WHERE is_delivered)                                AS delivered_users,
    count(*) FILTER (WHERE converted)                                   AS conversions,
    count(*) FILTER (WHERE fell_back)                                   AS fallback_users,
    sum(attempts)                                                       AS attempts,
    count(*) FILTER (WHERE switched)                                    AS switched_users,
    coalesce(sum(cost), 0)                                              AS cost_sum,
    coalesce(sum(cost * cost), 0)                                       AS cost_sum_squares,
    coalesce(sum(cost) FILTER (WHERE converted), 0)                     AS cost_conversion_sum_product,
    coalesce(sum(minutes_to_conversion) FILTER (WHERE converted), 0)    AS time_to_convert_sum,
    coalesce(sum(minutes_to_conversion * minutes_to_conversion) FILTER (WHERE converted), 0)
                                                                        AS time_to_convert_sum_squares,
    min(first_day)                                                      AS first_day,
    max(last_day)                                                       AS last_day{cuped}
FROM units
GROUP BY experiment_id, segment, variant
ORDER BY experiment_id, segment, variant
