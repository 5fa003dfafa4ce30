-- Per-variant, per-country sums for CUPED and the opt-out guardrail (issue 19), one experiment.
--
-- Members and their metric are those of experiments_variant_metrics.sql: a member (user_id) belongs
-- to the variant of their FIRST exposure (first non-fallback attempt of the experiment in the
-- period, by sent_at then event_id) and y = 1 when that first exposure converted (the fixed
-- `converted` column, or minutes_to_conversion <= $window_minutes).
-- x, the pre-period covariate: the member's behaviour in the $pre_days days BEFORE their first
-- exposure, [first_at - pre_days, first_at): {covariate} counts either their conversions (any type,
-- from the conversions table) or their delivered attempts (attempt_facts, any purpose). It cannot be
-- moved by the experiment (it is over before the member is exposed), which is what makes CUPED safe.
-- opted_out: the member sent an opt-out reply (_response_facts, classification 'opt_out') at or after
-- their first exposure; NULL when the warehouse has no _response_facts ({opt_out} is then NULL).
--
-- Fragments filled by analytics.experiments.data (never user input):
--   {where}     WHERE clause from analytics.filters.where on attempt_facts (alias a)
--   {covariate} one of the allow-listed pre-period counts (data._COVARIATES): (user_id, x) per member
--   {opt_out}   the allow-listed opt-out members (user_id), or an empty SELECT without _response_facts
-- How it runs: each covariate is a hash join of the members' first exposures to their history on
-- user_id with the pre-period as a range filter, grouped per member (a correlated subquery per member
-- was 30x slower at 10M messages).
-- Bound parameters: $experiment_id, $window_minutes (DOUBLE or NULL), $pre_days (INTEGER).
--
-- Output: variant, segment (country ISO-2 of the first exposure), segment_name, users, y_sum,
--   x_sum, x_sum_squares, xy_sum, pre_users (members with x > 0), opt_out_users (0 without the
--   table: data.py reports it as missing). y is 0/1, so sum(y^2) = y_sum.
WITH exposures AS (
    SELECT a.event_id, a.sent_at, a.variant, a.user_id, a.country_iso2, a.country_name,
           a.minutes_to_conversion, a.converted
    FROM attempt_facts a
    WHERE a.experiment_id = $experiment_id
      AND a.variant IS NOT NULL
      AND NOT a.is_fallback
      AND {where}
),
members AS (
    SELECT
        f.user_id,
        arg_min({{
            variant: f.variant,
            segment: f.country_iso2,
            segment_name: f.country_name,
            first_at: f.sent_at,
            converted: CASE WHEN CAST($window_minutes AS DOUBLE) IS NULL THEN coalesce(f.converted, false)
                            ELSE coalesce(f.minutes_to_conversion <= CAST($window_minutes AS DOUBLE), false) END
        }}, {{s: f.sent_at, e: f.event_id}}) AS fx
    FROM exposures f
    GROUP BY f.user_id
),
firsts AS (
    SELECT m.user_id, m.fx.first_at AS first_at FROM members m
),
pre AS (
    -- {covariate}: joins firsts (alias u) to the member's history; one row per member with history
    {covariate}
),
opted AS (
    {opt_out}
),
units AS (
    SELECT
        m.user_id,
        m.fx.variant                                AS variant,
        m.fx.segment                                AS segment,
        m.fx.segment_name                           AS segment_name,
        CAST(m.fx.converted AS INTEGER)             AS y,
        coalesce(p.x, 0)                            AS x,
        o.user_id IS NOT NULL                       AS opted_out
    FROM members m
    LEFT JOIN pre p ON p.user_id = m.user_id
    LEFT JOIN opted o ON o.user_id = m.user_id
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
