-- Per-variant (optionally per-segment) user-level aggregates of A/B experiments.
--
-- Assignment unit: user_id. A user belongs to the variant of their FIRST exposure
-- (first non-fallback attempt of the experiment, by sent_at then event_id); later
-- attempts, even in another variant (an assignment bug), are counted with that first
-- variant (intent to treat) and the user is counted in switched_users.
-- Conversion, delivery and fallback are read from the first exposure; cost sums every
-- exposure of the user plus the voice fallbacks those exposures triggered.
--
-- Fragments filled by analytics.experiments (never user input):
--   {where}    WHERE clause from analytics.filters.where on attempt_facts (alias a)
--   {segment}  an allow-listed expression on the first exposure (alias f), or NULL
-- Bound parameters: $all_experiments (bool), $experiment_ids (list), $window_minutes
-- (DOUBLE or NULL: NULL reads the fixed `converted` column of attempt_facts).
--
-- Output columns: experiment_id, segment, segment_name, variant, users,
--   delivery_known_users, delivered_users, conversions, fallback_users, attempts,
--   switched_users, cost_sum, cost_sum_squares, cost_conversion_sum_product,
--   time_to_convert_sum, time_to_convert_sum_squares, first_day, last_day
WITH exposures AS (
    SELECT a.*
    FROM attempt_facts a
    WHERE a.experiment_id IS NOT NULL
      AND a.variant IS NOT NULL
      AND NOT a.is_fallback
      AND ($all_experiments OR list_contains($experiment_ids, a.experiment_id))
      AND {where}
),
first_exposure AS (
    SELECT *
    FROM exposures
    QUALIFY row_number() OVER (PARTITION BY experiment_id, user_id ORDER BY sent_at, event_id) = 1
),
per_user AS (
    SELECT
        e.experiment_id,
        e.user_id,
        count(*)                                                    AS attempts,
        count(DISTINCT e.variant)                                   AS variants_seen,
        sum(coalesce(e.cost_usd, 0) + coalesce(fb.cost_usd, 0))     AS cost,
        max(e.sent_day)                                             AS last_day
    FROM exposures e
    LEFT JOIN attempt_facts fb ON fb.event_id = e.fallback_event_id
    GROUP BY e.experiment_id, e.user_id
),
units AS (
    SELECT
        f.experiment_id,
        f.user_id,
        f.variant,
        {segment}                                                   AS segment,
        {segment_name}                                              AS segment_name,
        f.is_delivered,
        f.fallback_event_id IS NOT NULL                             AS fell_back,
        CASE WHEN CAST($window_minutes AS DOUBLE) IS NULL THEN coalesce(f.converted, false)
             ELSE coalesce(f.minutes_to_conversion <= CAST($window_minutes AS DOUBLE), false)
        END                                                         AS converted,
        f.minutes_to_conversion,
        f.sent_day                                                  AS first_day,
        u.last_day,
        u.attempts,
        u.variants_seen,
        u.cost
    FROM first_exposure f
    JOIN per_user u ON u.experiment_id = f.experiment_id AND u.user_id = f.user_id
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
    count(*) FILTER (WHERE variants_seen > 1)                           AS switched_users,
    coalesce(sum(cost), 0)                                              AS cost_sum,
    coalesce(sum(cost * cost), 0)                                       AS cost_sum_squares,
    coalesce(sum(cost) FILTER (WHERE converted), 0)                     AS cost_conversion_sum_product,
    coalesce(sum(minutes_to_conversion) FILTER (WHERE converted), 0)    AS time_to_convert_sum,
    coalesce(sum(minutes_to_conversion * minutes_to_conversion) FILTER (WHERE converted), 0)
                                                                        AS time_to_convert_sum_squares,
    min(first_day)                                                      AS first_day,
    max(last_day)                                                       AS last_day
FROM units
GROUP BY experiment_id, segment, variant
ORDER BY experiment_id, segment, variant
