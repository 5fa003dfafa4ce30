-- The opt-out guardrail's counts of experiments_preperiod.sql (opt_out_users per variant and country of the
-- first exposure), answered from _experiment_exposures for the few members who opted out: a member counts
-- when an opt-out reply of theirs in the experiment came at or after their first exposure among the rows
-- the filters keep (the smallest exposure_order). The Experiments page reads the rest of the pre-period
-- data from experiment_data (analytics.experiments.data.preperiod_from).
--
-- Fragments filled by analytics.experiments.data (never user input):
--   {where}    WHERE clause from analytics.filters.where (alias a), on columns this table keeps
--   {opt_out}  data._OPT_OUT_LAST: (user_id, last_at) per member with an opt-out reply in the experiment
-- Bound parameters: $experiment_id, $f_start / $f_end from {where}.
-- Output: variant, segment, opt_out_users.
WITH opted AS (
    {opt_out}
),
firsts AS (
    SELECT a.user_id, min(a.exposure_order) AS first_order
    FROM _experiment_exposures a
    WHERE a.experiment_id = $experiment_id
      AND {where}
      AND a.user_id IN (SELECT user_id FROM opted)
    GROUP BY a.user_id
)
SELECT f.variant, f.country_iso2 AS segment, count(*) AS opt_out_users
FROM firsts m
JOIN _experiment_exposures f ON f.exposure_order = m.first_order
JOIN opted o ON o.user_id = m.user_id AND o.last_at >= f.sent_at
GROUP BY f.variant, f.country_iso2
ORDER BY f.variant, f.country_iso2
