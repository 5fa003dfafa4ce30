"""A/B statistics engine: pure functions over small frozen dataclasses.

SQL (the experiments data-loading module) returns per-arm counts and sums; this
module turns them into lifts, intervals, p-values, chance to win, SRM checks,
power calculations and a plain-English verdict.  Nothing here touches a
database, Streamlit or the clock, so every number can be tested against known
values.  The design follows GrowthBook's stats engine (gbstats) but depends only
on scipy.

Conventions used throughout
---------------------------
* **Relative lift** is a fraction: ``0.041`` means +4.1 %.  It is
  ``treatment / control - 1`` and its variance comes from the delta method with
  unpooled per-arm variances (``Var(B/A) ~ Var(B)/A^2 + B^2 Var(A)/A^4``).
* **Absolute lift** of a proportion (``abs_lift``, ``abs_ci_low``,
  ``abs_ci_high``) is in **percentage points**: ``1.2`` means +1.2 pp.
* **Normal (z) reference, not Student t.**  Delivery experiments have
  thousands of units per arm, where t and z agree to 4 decimals; using z keeps
  the p-value, the interval and chance to win on one scale
  (chance to win = Phi(z)).
* **Every interval test is two-sided** and ``p_value < alpha`` exactly when the
  interval at level ``alpha`` excludes 0 (also in sequential mode).
* **Sequential (always-valid) mode** uses the normal-mixture confidence
  sequence of Howard et al. 2021 / Waudby-Smith et al. 2023 (eqs. 9, 155, 161 of
  arXiv:2103.06476v7), exactly as GrowthBook does: the interval half-width is
  ``sqrt(s2) * sqrt(2 (n rho^2 + 1) / (n^2 rho^2) * ln(sqrt(n rho^2 + 1) / alpha))``
  with ``s2 = se^2 * n`` and ``n`` = units in both arms, and the mixing
  parameter ``rho = sqrt((-2 ln alpha + ln(-2 ln alpha + 1)) / N)``.  ``N``
  (``tuning_n``, default 5000 like GrowthBook) is the total sample size at which
  the interval is tightest: set it near the expected final size.  Because the
  half-width is ``se`` times a factor that depends only on ``n``, sequential
  mode is "a fixed test with a bigger critical z"; we use that z for the
  relative interval and for the Newcombe absolute interval alike.  The p-value
  is the always-valid one, ``min(1, 1 / e-value)``; it crosses ``alpha``
  exactly where the interval starts to exclude 0.  Chance to win is *not*
  adjusted (it is a posterior probability, see ``CHANCE_TO_WIN_EXPLAINED``).

Second round (issue 19), each following gbstats 0.8.0 where it has the method:

* ``bayesian_proportion_test``: Gaussian prior on the relative lift (GrowthBook's
  default N(0, 0.3^2)), posterior mean, credible interval, chance to win and the
  risk (expected relative loss) of shipping each arm, as ``EffectBayesianABTest``.
* ``cuped_test``: CUPED / regression adjustment on a pre-period covariate with
  theta pooled over both arms (``compute_theta``); the unadjusted lift beside it.
* ``benjamini_hochberg`` beside ``holm_adjust``; ``compare_variants(correction="bh")``.
* ``heterogeneity_test``: Cochran's Q and I^2 across segments, per-segment lifts
  corrected for the number of segments (not in gbstats).
* ``decision``: Ship / Discuss / Don't ship with a reason and the days still
  needed; its rules are ``DECISION_RULES`` (quoted on the page).

The package (issue 19 split the 2,000-line module; every public name is still importable from
``switchboard.analytics.experiments_stats``):

* ``base``: constants, result dataclasses, normal building blocks, Wilson/Newcombe, the shared
  relative-lift inference;
* ``multiplicity``: Holm and Benjamini-Hochberg;
* ``frequentist``: proportion, mean and ratio tests, A/B/n (``compare_variants``), SRM;
* ``power``: sample size, minimum detectable effect, days needed;
* ``verdict``: the first-round verdict and its sentence;
* ``bayesian``, ``cuped``, ``heterogeneity``, ``decision``: the second round below.
"""

from __future__ import annotations

from switchboard.analytics.experiments_stats.base import (
    CHANCE_TO_WIN_EXPLAINED,
    DEFAULT_ALPHA,
    DEFAULT_POWER,
    DEFAULT_SEQUENTIAL_TUNING_N,
    DEFAULT_SRM_THRESHOLD,
    MIN_SRM_EXPECTED_UNITS,
    Arm,
    Correction,
    Decision,
    Direction,
    MeanStats,
    MetricResult,
    ProportionResult,
    RatioStats,
    RelativeResult,
    SrmResult,
    VariantComparison,
    Verdict,
    chance_to_win,
    critical_z,
    fixed_critical_z,
    newcombe_interval,
    normal_cdf,
    relative_lift_variance,
    sequential_critical_z,
    sequential_p_value,
    sequential_rho,
    two_sided_p_value,
    wilson_interval,
)
from switchboard.analytics.experiments_stats.bayesian import (
    DEFAULT_PRIOR_MEAN,
    DEFAULT_PRIOR_VARIANCE,
    RISK_EXPLAINED,
    BayesianResult,
    bayesian_from_estimate,
    bayesian_proportion_test,
)
from switchboard.analytics.experiments_stats.cuped import (
    CupedResult,
    CupedStats,
    cuped_test,
)
from switchboard.analytics.experiments_stats.decision import (
    DECISION_RULES,
    GUARDRAIL_HIGHER_IS_BETTER,
    ShipDecision,
    ShipOutcome,
    decision,
)
from switchboard.analytics.experiments_stats.frequentist import (
    compare_variants,
    mean_test,
    proportion_test,
    ratio_test,
    srm_check,
    srm_p_value,
)
from switchboard.analytics.experiments_stats.heterogeneity import (
    HeterogeneityResult,
    SegmentCorrection,
    SegmentEffect,
    SegmentLift,
    heterogeneity_test,
)
from switchboard.analytics.experiments_stats.multiplicity import (
    benjamini_hochberg,
    holm_adjust,
)
from switchboard.analytics.experiments_stats.power import (
    days_needed,
    minimum_detectable_effect,
    relative_lift_unit_variance,
    required_sample_size,
)
from switchboard.analytics.experiments_stats.verdict import (
    DecisionInput,
    effect_direction,
    verdict,
)

__all__ = [
    "CHANCE_TO_WIN_EXPLAINED",
    "DECISION_RULES",
    "DEFAULT_ALPHA",
    "DEFAULT_POWER",
    "DEFAULT_PRIOR_MEAN",
    "DEFAULT_PRIOR_VARIANCE",
    "DEFAULT_SEQUENTIAL_TUNING_N",
    "DEFAULT_SRM_THRESHOLD",
    "GUARDRAIL_HIGHER_IS_BETTER",
    "MIN_SRM_EXPECTED_UNITS",
    "RISK_EXPLAINED",
    "Arm",
    "BayesianResult",
    "Correction",
    "CupedResult",
    "CupedStats",
    "Decision",
    "DecisionInput",
    "Direction",
    "HeterogeneityResult",
    "MeanStats",
    "MetricResult",
    "ProportionResult",
    "RatioStats",
    "RelativeResult",
    "SegmentCorrection",
    "SegmentEffect",
    "SegmentLift",
    "ShipDecision",
    "ShipOutcome",
    "SrmResult",
    "VariantComparison",
    "Verdict",
    "bayesian_from_estimate",
    "bayesian_proportion_test",
    "benjamini_hochberg",
    "chance_to_win",
    "compare_variants",
    "critical_z",
    "cuped_test",
    "days_needed",
    "decision",
    "effect_direction",
    "fixed_critical_z",
    "heterogeneity_test",
    "holm_adjust",
    "mean_test",
    "minimum_detectable_effect",
    "newcombe_interval",
    "normal_cdf",
    "proportion_test",
    "ratio_test",
    "relative_lift_unit_variance",
    "relative_lift_variance",
    "required_sample_size",
    "sequential_critical_z",
    "sequential_p_value",
    "sequential_rho",
    "srm_check",
    "srm_p_value",
    "two_sided_p_value",
    "verdict",
    "wilson_interval",
]
