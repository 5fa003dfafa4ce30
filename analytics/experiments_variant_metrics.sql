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
-- How it runs (one scan, no window function): the exposures (experiment rows only) are
-- read once; each member's first exposure is picked with arg_min on (sent_at, event_id),
-- the same order the row_number() definition used, inside the one per-member GROUP BY that
-- also counts attempts, variants and cost. The fallback join builds on the fallback attempts
-- only (fallback_event_id always names an is_fallback attempt, see ingest/facts.sql), and
-- exposures is read once, so it streams instead of being materialised.
WITH exposures AS (
    SELECT a.event_id, a.sent_at, a.sent_day, a.experiment_id, a.variant, a.user_id, a.country_iso2,
           a.country_name, a.is_delivered, a.cost_usd, a.fallback_event_id, a.minutes_to_conversion,
           a.converted
    FROM attempt_facts a
    WHERE a.experiment_id IS NOT NULL
      AND a.variant IS NOT NULL
      AND NOT a.is_fallback
      AND ($all_experiments OR list_contains($experiment_ids, a.experiment_id))
      AND {where}
),
fallback_cost AS (
    SELECT fb.event_id, fb.cost_usd
    FROM attempt_facts fb
    WHERE fb.is_fallback
),
per_user AS (
    SELECT
        f.experiment_id,
        f.user_id,
        arg_min({{
            variant: f.variant,
            segment: {segment},
            segment_name: {segment_name},
            is_delivered: f.is_delivered,
            fell_back: f.fallback_event_id IS NOT NULL,
            converted: CASE WHEN CAST($window_minutes AS DOUBLE) IS NULL THEN coalesce(f.converted, false)
                            ELSE coalesce(f.minutes_to_conversion <= CAST($window_minutes AS DOUBLE), false) END,
            minutes_to_conversion: f.minutes_to_conversion,
            first_day: f.sent_day
        }}, {{s: f.sent_at, e: f.event_id}})                           AS fx,
        count(*)                                                    AS attempts,
        min(f.variant) <> max(f.variant)                            AS switched,
        sum(coalesce(f.cost_usd, 0) + coalesce(fb.cost_usd, 0))     AS cost,
        max(f.sent_day)                                             AS last_day
    FROM exposures f
    LEFT JOIN fallback_cost fb ON fb.event_id = f.fallback_event_id
    GROUP BY f.experiment_id, f.user_id
),
units AS (
    SELECT
        experiment_id,
        user_id,
        fx.variant                                                  AS variant,
        fx.segment                                                  AS segment,
        fx.segment_name                                             AS segment_name,
        fx.is_delivered                                             AS is_delivered,
        fx.fell_back                                                AS fell_back,
        fx.converted                                                AS converted,
        fx.minutes_to_conversion                                    AS minutes_to_conversion,
        fx.first_day                                                AS first_day,
        last_day,
        attempts,
        switched,
        cost
    FROM per_user
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
    max(last_day)                                                       AS last_day
FROM units
GROUP BY experiment_id, segment, variant
ORDER BY experiment_id, segment, variant
