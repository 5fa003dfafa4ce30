"""Bayesian readout: Gaussian prior on the relative lift, chance to win and risk (gbstats EffectBayesianABTest)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from switchboard.analytics.experiments_stats.base import (
    DEFAULT_ALPHA,
    _check_alpha,
    chance_to_win,
    fixed_critical_z,
    normal_cdf,
    relative_lift_variance,
)
from switchboard.analytics.experiments_stats.frequentist import (
    _boundary_notes,
    _checked_arm,
)

# --------------------------------------------------------------------------- #
# Bayesian readout: Gaussian prior on the relative lift (gbstats EffectBayesianABTest)
# --------------------------------------------------------------------------- #
# GrowthBook's default proper prior on the relative lift: mean 0, standard
# deviation 0.3 (a lift beyond +/-60 % is a priori unlikely).
DEFAULT_PRIOR_MEAN = 0.0
DEFAULT_PRIOR_VARIANCE = 0.09

RISK_EXPLAINED = (
    "Risk is what you can expect to lose by picking a variant: the average shortfall in lift if that "
    "variant is in fact the worse one, weighted by how likely that is. A treatment with a 90% chance to "
    "win and a risk of 0.1% is a safe bet (even when wrong, it costs little); one with the same chance to "
    "win and a risk of 3% is a gamble. A useful habit: ship only when the treatment's risk is below the "
    "smallest loss you would shrug off. Risk and chance to win come from a Bayesian model with a sceptical "
    "prior (lifts beyond about +/-60% are unlikely), so with little data the expected lift is pulled "
    "towards 0."
)


@dataclass(frozen=True)
class BayesianResult:
    """Posterior of the relative lift ``treatment / control - 1`` (all fractions).

    ``expected`` is the posterior mean, ``ci_low``/``ci_high`` the central
    credible interval at level ``1 - alpha`` and ``se`` the posterior standard
    deviation.  ``risk_control`` is the expected relative loss if we keep
    control (the gain we forgo when treatment is really better), and
    ``risk_treatment`` the expected loss if we ship treatment; both are >= 0
    and read as "by shipping this we expect to lose this much lift".  None
    fields mean "cannot be computed" and ``note`` says why.
    """

    control_rate: float
    treatment_rate: float
    expected: float | None
    ci_low: float | None
    ci_high: float | None
    se: float | None
    chance_to_win: float | None
    risk_control: float | None
    risk_treatment: float | None
    prior_mean: float
    prior_variance: float
    proper: bool
    alpha: float
    higher_is_better: bool
    note: str

    @property
    def relative_lift(self) -> float | None:
        """The posterior mean, under the name the other results use (for ``decision``)."""
        return self.expected


def bayesian_proportion_test(
    control: tuple[int, int],
    treatment: tuple[int, int],
    *,
    prior_mean: float = DEFAULT_PRIOR_MEAN,
    prior_variance: float = DEFAULT_PRIOR_VARIANCE,
    proper: bool = True,
    higher_is_better: bool = True,
    alpha: float = DEFAULT_ALPHA,
) -> BayesianResult:
    """Bayesian readout of two rates; each arm is ``(users, conversions)``.

    As gbstats' ``EffectBayesianABTest`` with a relative prior: the data give
    the relative lift d = p_t / p_c - 1 with the delta-method variance v (the
    same d and v as ``proportion_test``); the prior is N(prior_mean,
    prior_variance) on the relative lift.  Posterior precision 1/v + 1/prior_variance,
    posterior mean (d/v + prior_mean/prior_variance) / precision.  With
    ``proper=False`` the prior is flat: the posterior is N(d, v) and chance to win is
    exactly ``proportion_test``'s.  Risk, for X ~ posterior:
    risk_control = E[max(X, 0)] and risk_treatment = E[max(-X, 0)] (closed form
    mu Phi(mu/s) + s phi(mu/s)); swapped when ``higher_is_better`` is False.
    """
    _check_alpha(alpha)
    if proper and not prior_variance > 0:
        raise ValueError("prior_variance must be positive for a proper prior")
    (n_c, x_c), (n_t, x_t) = _checked_arm(control, "control"), _checked_arm(treatment, "treatment")
    p_c, p_t = x_c / n_c, x_t / n_t
    prior = (prior_mean, prior_variance, proper)
    notes = _boundary_notes(control=(n_c, x_c), treatment=(n_t, x_t), has_relative_ci=False)
    if p_c == 0:
        notes.insert(0, "Control is at 0%, so a relative lift is undefined; read the absolute difference.")
        return _empty_bayesian(p_c, p_t, prior, alpha, higher_is_better, notes)
    data_mean = p_t / p_c - 1.0
    data_variance = relative_lift_variance(p_c, p_c * (1.0 - p_c) / n_c, p_t, p_t * (1.0 - p_t) / n_t)
    if data_variance <= 0:
        notes.insert(0, "Neither arm varies, so the posterior of the lift cannot be estimated.")
        return _empty_bayesian(p_c, p_t, prior, alpha, higher_is_better, notes)
    return bayesian_from_estimate(
        data_mean,
        data_variance,
        control_rate=p_c,
        treatment_rate=p_t,
        prior_mean=prior_mean,
        prior_variance=prior_variance,
        proper=proper,
        higher_is_better=higher_is_better,
        alpha=alpha,
        note=" ".join(notes),
    )


def bayesian_from_estimate(
    lift: float,
    variance: float,
    *,
    control_rate: float,
    treatment_rate: float,
    prior_mean: float = DEFAULT_PRIOR_MEAN,
    prior_variance: float = DEFAULT_PRIOR_VARIANCE,
    proper: bool = True,
    higher_is_better: bool = True,
    alpha: float = DEFAULT_ALPHA,
    note: str = "",
) -> BayesianResult:
    """The Bayesian readout from any relative-lift estimate and its variance (the data likelihood).

    ``bayesian_proportion_test`` passes the delta-method lift of two rates; the Experiments page
    passes the CUPED-adjusted lift and its (smaller) variance, as gbstats does when regression
    adjustment is on.  Same prior, posterior, chance to win and risk as described there.
    """
    _check_alpha(alpha)
    if proper and not prior_variance > 0:
        raise ValueError("prior_variance must be positive for a proper prior")
    if not variance > 0:
        raise ValueError("the variance of the lift must be positive")
    mean, sd = _gaussian_posterior(lift, variance, prior_mean, prior_variance, proper)
    half_width = fixed_critical_z(alpha) * sd
    gain, loss = _positive_part_mean(mean, sd), _positive_part_mean(-mean, sd)
    risk_control, risk_treatment = (gain, loss) if higher_is_better else (loss, gain)
    return BayesianResult(
        control_rate=control_rate,
        treatment_rate=treatment_rate,
        expected=mean,
        ci_low=mean - half_width,
        ci_high=mean + half_width,
        se=sd,
        chance_to_win=chance_to_win(mean, sd, higher_is_better),
        risk_control=risk_control,
        risk_treatment=risk_treatment,
        prior_mean=prior_mean,
        prior_variance=prior_variance,
        proper=proper,
        alpha=alpha,
        higher_is_better=higher_is_better,
        note=note,
    )


def _gaussian_posterior(
    data_mean: float, data_variance: float, prior_mean: float, prior_variance: float, proper: bool
) -> tuple[float, float]:
    """Normal-normal update; a flat (improper) prior leaves the data untouched."""
    if not proper:
        return data_mean, math.sqrt(data_variance)
    precision = 1.0 / data_variance + 1.0 / prior_variance
    mean = (data_mean / data_variance + prior_mean / prior_variance) / precision
    return mean, math.sqrt(1.0 / precision)


def _positive_part_mean(mu: float, sigma: float) -> float:
    """E[max(X, 0)] for X ~ N(mu, sigma^2) = mu Phi(mu/sigma) + sigma phi(mu/sigma).

    gbstats writes the same quantity as P(X > 0) * E[X | X > 0] via scipy's
    truncated normal; the closed form is exact and needs no scipy call.
    """
    z = mu / sigma
    density = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    # Far in the left tail the two terms cancel to rounding noise around 0.
    return max(0.0, mu * normal_cdf(z) + sigma * density)


def _empty_bayesian(
    p_c: float,
    p_t: float,
    prior: tuple[float, float, bool],
    alpha: float,
    higher_is_better: bool,
    notes: list[str],
) -> BayesianResult:
    prior_mean, prior_variance, proper = prior
    return BayesianResult(
        control_rate=p_c,
        treatment_rate=p_t,
        expected=None,
        ci_low=None,
        ci_high=None,
        se=None,
        chance_to_win=None,
        risk_control=None,
        risk_treatment=None,
        prior_mean=prior_mean,
        prior_variance=prior_variance,
        proper=proper,
        alpha=alpha,
        higher_is_better=higher_is_better,
        note=" ".join(notes),
    )
