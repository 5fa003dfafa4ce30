"""Effects that differ by segment (country, carrier): Cochran's Q, I^2 and corrected per-segment lifts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from scipy import special

from switchboard.analytics.experiments_stats.base import (
    DEFAULT_ALPHA,
    Direction,
    ProportionResult,
    RelativeResult,
    _check_alpha,
    _join,
    fixed_critical_z,
    two_sided_p_value,
)
from switchboard.analytics.experiments_stats.cuped import (
    CupedResult,
)
from switchboard.analytics.experiments_stats.multiplicity import (
    benjamini_hochberg,
    holm_adjust,
)

# --------------------------------------------------------------------------- #
# Effects that differ by segment (country, carrier): Cochran's Q
# --------------------------------------------------------------------------- #
SegmentCorrection = Literal["holm", "bh"]


@dataclass(frozen=True)
class SegmentEffect:
    """A segment's relative lift and its standard error, when not passing a full result."""

    lift: float
    se: float


@dataclass(frozen=True)
class SegmentLift:
    """One segment inside ``heterogeneity_test``.

    ``ci_low``/``ci_high`` are at the corrected level ``ci_alpha``;
    ``p_value`` is raw, ``p_value_adjusted`` corrected across the segments;
    ``direction`` is better/worse only when ``p_value_adjusted < alpha``.
    """

    segment: str
    lift: float
    se: float
    ci_low: float
    ci_high: float
    ci_alpha: float
    p_value: float
    p_value_adjusted: float
    direction: Direction


@dataclass(frozen=True)
class HeterogeneityResult:
    """Does the effect differ across segments?  Cochran's Q with I^2, plus corrected per-segment lifts.

    ``differs`` is ``p_value < alpha``.  ``opposite`` is True when, after the
    multiplicity correction, at least one segment is significantly better and
    another significantly worse (the variant helps somewhere and hurts elsewhere).
    ``pooled_lift``/``pooled_se`` are the fixed-effect (inverse-variance)
    average; ``tau_squared`` the DerSimonian-Laird between-segment variance.
    Segments without a lift are listed in ``excluded`` with the reason.
    """

    q: float | None
    df: int
    p_value: float | None
    i_squared: float | None
    tau_squared: float | None
    pooled_lift: float | None
    pooled_se: float | None
    differs: bool
    opposite: bool
    segments: tuple[SegmentLift, ...]
    excluded: tuple[tuple[str, str], ...]
    correction: SegmentCorrection
    alpha: float
    message: str


def heterogeneity_test(
    per_segment_results: Mapping[str, ProportionResult | RelativeResult | CupedResult | SegmentEffect],
    *,
    alpha: float = DEFAULT_ALPHA,
    correction: SegmentCorrection = "holm",
    higher_is_better: bool = True,
) -> HeterogeneityResult:
    """Test that the treatment effect differs across segments, and correct the per-segment lifts.

    Input: segment name -> a fixed-horizon ``ProportionResult``, ``RelativeResult``,
    ``CupedResult`` or ``SegmentEffect``; the standard error of each lift is the
    interval half-width divided by the critical z (exact for fixed-horizon results).

    Cochran's Q = sum w_i (y_i - y_bar)^2 with w_i = 1/se_i^2 and y_bar the
    inverse-variance mean; under "same effect everywhere" Q ~ chi-square(k - 1).
    I^2 = max(0, (Q - df) / Q) is the share of the spread that is real rather
    than noise (Higgins & Thompson 2002).  Per-segment p-values are corrected
    across the k segments with Holm (default) or Benjamini-Hochberg ("bh").
    Intervals: at alpha / k for Holm (Bonferroni, so an interval excluding 0
    implies a Holm-significant segment); for BH, the Benjamini-Yekutieli (2005)
    false-coverage interval at R * alpha / k, with R the number of BH
    discoveries (alpha / k when there are none), which excludes 0 exactly for
    the discoveries.
    """
    _check_alpha(alpha)
    if correction not in ("holm", "bh"):
        raise ValueError(f"unknown correction {correction!r}; use 'holm' or 'bh'")
    effects, excluded = _segment_effects(per_segment_results, higher_is_better)
    segments = _corrected_segments(effects, alpha, correction, higher_is_better)
    q, p_value, i_squared, tau_squared, pooled, pooled_se = _cochran_q(effects)
    differs = p_value is not None and p_value < alpha
    directions = {s.direction for s in segments}
    opposite = {"better", "worse"} <= directions
    result = HeterogeneityResult(
        q=q,
        df=max(0, len(effects) - 1),
        p_value=p_value,
        i_squared=i_squared,
        tau_squared=tau_squared,
        pooled_lift=pooled,
        pooled_se=pooled_se,
        differs=differs,
        opposite=opposite,
        segments=segments,
        excluded=tuple(excluded),
        correction=correction,
        alpha=alpha,
        message="",
    )
    return replace(result, message=_heterogeneity_message(result))


def _segment_effects(
    per_segment_results: Mapping[str, object], higher_is_better: bool
) -> tuple[dict[str, SegmentEffect], list[tuple[str, str]]]:
    effects: dict[str, SegmentEffect] = {}
    excluded: list[tuple[str, str]] = []
    for name, result in per_segment_results.items():
        effect: SegmentEffect | None = None
        if isinstance(result, SegmentEffect):
            effect = result
        else:
            if getattr(result, "higher_is_better", higher_is_better) != higher_is_better:
                raise ValueError(
                    f"segment {name!r} was computed with higher_is_better="
                    f"{not higher_is_better}; pass the same higher_is_better to heterogeneity_test"
                )
            effect = _lift_and_se(result)
        if effect is None:
            excluded.append((name, "no relative lift (control at 0 or no variation)"))
        elif not (math.isfinite(effect.lift) and math.isfinite(effect.se) and effect.se > 0):
            excluded.append((name, "lift or standard error not finite and positive"))
        else:
            effects[name] = effect
    return effects, excluded


def _lift_and_se(result: object) -> SegmentEffect | None:
    """A result's relative lift and its standard error, or None when it has no lift."""
    if isinstance(result, CupedResult):
        if result.relative_lift is None or result.se is None:
            return None
        return SegmentEffect(result.relative_lift, result.se)
    if not isinstance(result, (ProportionResult, RelativeResult)):
        raise TypeError(f"cannot read a lift from {type(result).__name__}")
    if result.sequential:
        raise ValueError(
            "pass fixed-horizon results (sequential=False): segment tests need plain standard errors"
        )
    if result.relative_lift is None or result.ci_low is None or result.ci_high is None:
        return None
    se = (result.ci_high - result.ci_low) / (2.0 * fixed_critical_z(result.alpha))
    return SegmentEffect(result.relative_lift, se)


def _corrected_segments(
    effects: Mapping[str, SegmentEffect], alpha: float, correction: SegmentCorrection, higher_is_better: bool
) -> tuple[SegmentLift, ...]:
    k = len(effects)
    if k == 0:
        return ()
    raw = [two_sided_p_value(e.lift / e.se) for e in effects.values()]
    adjusted = holm_adjust(raw) if correction == "holm" else benjamini_hochberg(raw)
    discoveries = sum(p < alpha for p in adjusted)
    ci_alpha = alpha * max(1, discoveries) / k if correction == "bh" else alpha / k
    z = fixed_critical_z(ci_alpha)
    segments = []
    for (name, effect), p, p_adj in zip(effects.items(), raw, adjusted, strict=True):
        direction: Direction = "unclear"
        if p_adj < alpha:
            good = effect.lift > 0 if higher_is_better else effect.lift < 0
            direction = "better" if good else "worse"
        segments.append(
            SegmentLift(
                segment=name,
                lift=effect.lift,
                se=effect.se,
                ci_low=effect.lift - z * effect.se,
                ci_high=effect.lift + z * effect.se,
                ci_alpha=ci_alpha,
                p_value=p,
                p_value_adjusted=p_adj,
                direction=direction,
            )
        )
    return tuple(segments)


def _cochran_q(
    effects: Mapping[str, SegmentEffect],
) -> tuple[float | None, float | None, float | None, float | None, float | None, float | None]:
    """(Q, p, I^2, tau^2 DerSimonian-Laird, fixed-effect mean, its se); Nones below two segments."""
    if not effects:
        return None, None, None, None, None, None
    weights = [1.0 / (e.se * e.se) for e in effects.values()]
    lifts = [e.lift for e in effects.values()]
    total = sum(weights)
    pooled = sum(w * y for w, y in zip(weights, lifts, strict=True)) / total
    pooled_se = math.sqrt(1.0 / total)
    if len(effects) < 2:
        return None, None, None, None, pooled, pooled_se
    q = sum(w * (y - pooled) ** 2 for w, y in zip(weights, lifts, strict=True))
    df = len(effects) - 1
    i_squared = max(0.0, (q - df) / q) if q > 0 else 0.0
    tau_squared = max(0.0, (q - df) / (total - sum(w * w for w in weights) / total))
    # special.chdtrc is the chi-square survival function as a ufunc: ~100x faster than stats.chi2.sf.
    return q, float(special.chdtrc(df, q)), i_squared, tau_squared, pooled, pooled_se


def _heterogeneity_message(result: HeterogeneityResult) -> str:
    """One sentence for the page: whether the effect differs, and where it helps or hurts."""
    k = len(result.segments)
    if result.p_value is None:
        return f"Only {k} segment{'s' if k != 1 else ''} with a measurable lift: nothing to compare."
    family = f"{k} segments, {_correction_name(result.correction)}-corrected"
    statistic = (
        f"Cochran's Q = {result.q:.1f} on {result.df} df, p = {result.p_value:.2g}, "
        f"I\u00b2 = {100 * (result.i_squared or 0.0):.0f}%"
    )
    helped = [s.segment for s in result.segments if s.direction == "better"]
    hurt = [s.segment for s in result.segments if s.direction == "worse"]
    where = []
    if helped:
        where.append(f"it helps in {_join(helped)}")
    if hurt:
        where.append(f"it hurts in {_join(hurt)}")
    detail = f": {' and '.join(where)} ({family})" if where else f"; no single segment stands out ({family})"
    if result.opposite:
        return f"The effect goes in opposite directions by segment ({statistic}){detail}."
    if result.differs:
        return f"The effect differs by segment ({statistic}){detail}."
    return f"No evidence that the effect differs by segment ({statistic}){detail}."


def _correction_name(correction: SegmentCorrection) -> str:
    return "Holm" if correction == "holm" else "Benjamini-Hochberg"
