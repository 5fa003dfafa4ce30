"""The first-round verdict (ship / keep running / stop / do not ship) and its sentence."""

from __future__ import annotations

from collections.abc import Mapping

from switchboard.analytics.experiments_stats.base import (
    Direction,
    MetricResult,
    ProportionResult,
    RelativeResult,
    SrmResult,
    Verdict,
    _join,
    _level,
    _pct,
    _probability,
    _signed_pct,
)
from switchboard.analytics.experiments_stats.bayesian import BayesianResult
from switchboard.analytics.experiments_stats.cuped import CupedResult

# The results ``decision`` and the phrases below accept.
DecisionInput = ProportionResult | RelativeResult | CupedResult | BayesianResult


# --------------------------------------------------------------------------- #
# Verdict
# --------------------------------------------------------------------------- #
def effect_direction(result: MetricResult) -> Direction:
    """Classify an effect: better / worse only when its interval lies entirely on one side of 0.

    For proportions the relative interval (when it exists) and the absolute
    Newcombe interval must agree; that protects against the over-narrow
    relative interval at 0 % / 100 % rates while changing nothing elsewhere.
    """
    intervals = []
    if result.ci_low is not None and result.ci_high is not None:
        intervals.append((result.ci_low, result.ci_high))
    if isinstance(result, ProportionResult):
        intervals.append((result.abs_ci_low, result.abs_ci_high))
    if not intervals:
        return "unclear"
    if all(low > 0 for low, _ in intervals):
        return "better" if result.higher_is_better else "worse"
    if all(high < 0 for _, high in intervals):
        return "worse" if result.higher_is_better else "better"
    return "unclear"


def verdict(
    primary: MetricResult,
    *,
    guardrails: Mapping[str, MetricResult] | None = None,
    srm: SrmResult | None = None,
    days_more: int | None = None,
    mde_relative: float | None = None,
    metric_name: str = "conversion",
    control_name: str = "A",
    treatment_name: str = "B",
) -> Verdict:
    """A decision and sentence from the primary result, guardrails, SRM and the days left.

    Rules, first match wins:

    1. SRM check failed -> "blocked: SRM" (the numbers cannot be trusted).
    2. A guardrail is hurt (its interval lies entirely on its bad side) -> "do not ship".
    3. Primary metric's interval entirely on the good side -> "ship".
    4. Primary metric's interval entirely on the bad side -> "do not ship".
    5. Inconclusive and either the planned sample is reached (``days_more == 0``)
       or the interval sits inside (-mde, +mde), i.e. any effect is smaller
       than the one we care about -> "stop: no effect likely".
    6. Otherwise -> "keep running", with the days left when known.

    ``days_more`` comes from ``days_needed``; ``mde_relative`` is the planned
    minimum detectable effect.  Intervals are whatever the results were built
    with (sequential and/or multiplicity-corrected), so the verdict inherits
    their error control.
    """
    guardrails = dict(guardrails or {})
    if srm is not None and not srm.ok:
        return Verdict("blocked: SRM", f"Blocked: {srm.message}", ("srm",))
    hurt = [name for name, result in guardrails.items() if effect_direction(result) == "worse"]
    if hurt:
        details = _join([f"{name} {_describe_effect(guardrails[name])}" for name in hurt])
        sentence = f"Do not ship {treatment_name}: it hurts {details}."
        return Verdict("do not ship", sentence, tuple(f"guardrail hurt: {name}" for name in hurt))
    primary_summary = f"{metric_name} {_describe_effect(primary)}"
    direction = effect_direction(primary)
    if direction == "better":
        sentence = f"Ship {treatment_name}: {primary_summary}{_chance_phrase(primary, control_name)}"
        sentence += _guardrail_phrase(guardrails)
        return Verdict("ship", sentence, ("primary better",))
    if direction == "worse":
        sentence = f"Do not ship {treatment_name}: {primary_summary}{_chance_phrase(primary, control_name)}."
        return Verdict("do not ship", sentence, ("primary worse",))
    return _inconclusive(primary, primary_summary, days_more, mde_relative)


def _inconclusive(
    primary: MetricResult, summary: str, days_more: int | None, mde_relative: float | None
) -> Verdict:
    target = f"a {_pct(abs(mde_relative))} lift" if mde_relative else "the planned effect"
    if _inside_mde(primary, mde_relative):
        sentence = f"Stop: no effect likely - {summary} rules out {target}."
        return Verdict("stop: no effect likely", sentence, ("inconclusive", "interval inside the MDE"))
    if days_more == 0:
        sentence = f"Stop: no effect likely - {summary} with enough users to detect {target}."
        return Verdict("stop: no effect likely", sentence, ("inconclusive", "planned sample reached"))
    if days_more is None:
        sentence = (
            f"Keep running: no clear effect yet, {summary}; not enough traffic yet to estimate how long."
        )
        return Verdict("keep running", sentence, ("inconclusive", "days unknown"))
    days = "1 more day" if days_more == 1 else f"{days_more} more days"
    sentence = f"Keep running: about {days} to detect {target}; so far {summary}."
    return Verdict("keep running", sentence, ("inconclusive",))


def _inside_mde(result: DecisionInput, mde_relative: float | None) -> bool:
    """True when the relative interval rules out effects as large as the MDE in both directions."""
    if not mde_relative or result.ci_low is None or result.ci_high is None:
        return False
    return -abs(mde_relative) < result.ci_low and result.ci_high < abs(mde_relative)


def _describe_effect(result: DecisionInput) -> str:
    """'+4.1% (95% CI +1.2% to +7.0%)', or in percentage points when no relative interval exists."""
    level = _level(result.alpha)
    if result.relative_lift is not None and result.ci_low is not None and result.ci_high is not None:
        return f"{_signed_pct(result.relative_lift)} ({level} CI {_signed_pct(result.ci_low)} to {_signed_pct(result.ci_high)})"
    if isinstance(result, ProportionResult):
        return (
            f"{result.abs_lift:+.1f} pp ({level} CI {result.abs_ci_low:+.1f} to {result.abs_ci_high:+.1f} pp)"
        )
    return "not measurable yet"


def _chance_phrase(result: MetricResult, control_name: str) -> str:
    if result.chance_to_win is None:
        return ""
    return f", {_probability(result.chance_to_win)} chance to beat {control_name}"


def _guardrail_phrase(guardrails: Mapping[str, DecisionInput]) -> str:
    if not guardrails:
        return ""
    improved = [name for name, r in guardrails.items() if _interval_direction(r) == "better"]
    unchanged = [name for name in guardrails if name not in improved]
    parts = []
    if unchanged:
        parts.append(f"{_join(unchanged)} unchanged")
    if improved:
        parts.append(f"{_join(improved)} improved")
    return "; " + "; ".join(parts)


def _interval_direction(result: DecisionInput) -> Direction:
    """better / worse when the result's interval lies on one side of 0 (see ``effect_direction``)."""
    if isinstance(result, (ProportionResult, RelativeResult)):
        return effect_direction(result)
    if result.ci_low is None or result.ci_high is None:
        return "unclear"
    if result.ci_low > 0:
        return "better" if result.higher_is_better else "worse"
    if result.ci_high < 0:
        return "worse" if result.higher_is_better else "better"
    return "unclear"
