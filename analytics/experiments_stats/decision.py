"""The decision card: Ship / Discuss / Don't ship with its reason and the days still needed."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from scipy import special

from switchboard.analytics.experiments_stats.base import (
    DEFAULT_POWER,
    ProportionResult,
    SrmResult,
    _join,
    _pct,
    fixed_critical_z,
    relative_lift_variance,
)
from switchboard.analytics.experiments_stats.bayesian import (
    BayesianResult,
)
from switchboard.analytics.experiments_stats.cuped import (
    CupedResult,
)
from switchboard.analytics.experiments_stats.heterogeneity import (
    HeterogeneityResult,
    _correction_name,
)
from switchboard.analytics.experiments_stats.verdict import (
    DecisionInput,
    _describe_effect,
    _guardrail_phrase,
    _inside_mde,
    _interval_direction,
)

# --------------------------------------------------------------------------- #
# Decision framework: Ship / Discuss / Don't ship
# --------------------------------------------------------------------------- #
ShipOutcome = Literal["Ship", "Discuss", "Don't ship"]

# The standard SMS guardrails and their good direction.  ``decision`` refuses a
# guardrail with one of these names whose result was computed the other way
# round (a forgotten higher_is_better=False would turn a harm into a win).
GUARDRAIL_HIGHER_IS_BETTER: Mapping[str, bool] = {
    "delivery rate": True,
    "opt-out rate": False,
    "cost per delivered message": False,
    "fallback rate": False,
}

# The rules of ``decision``, first match wins; the page quotes them verbatim.
DECISION_RULES: tuple[str, ...] = (
    (
        "Sample ratio mismatch: Don't ship. The traffic split does not match the plan, so no number can be "
        "trusted; fix the assignment first."
    ),
    (
        "A guardrail got worse (its interval lies entirely on its bad side): Don't ship, whatever the primary "
        "metric says."
    ),
    "The primary metric got worse (its interval lies entirely on its bad side): Don't ship.",
    (
        "The primary metric got better but the test has not run the minimum number of days: Don't ship yet; "
        "keep running until the minimum is reached."
    ),
    (
        "The primary metric got better but the variant hurts at least one segment (country or carrier, after "
        "correcting for the number of segments): Discuss; consider shipping only where it helps."
    ),
    (
        "The primary metric got better (its interval lies entirely on its good side) and no guardrail got "
        "worse: Ship."
    ),
    (
        "No clear change on the primary metric, and the test is short of its minimum days or of the sample "
        "needed to detect the minimum detectable effect (MDE) with the planned power: Don't ship yet; keep "
        "running for the days shown."
    ),
    (
        "No clear change on the primary metric with enough data, but a guardrail got better (for example a "
        "lower cost per delivered message): Discuss; ship only if that gain is worth it on its own."
    ),
    (
        "No clear change on the primary metric with enough data (the interval rules out effects as large as "
        "the MDE, or the planned sample is reached): Don't ship; keep the control."
    ),
)


@dataclass(frozen=True)
class ShipDecision:
    """The decision card: outcome, one plain sentence, and the days the test must still run.

    ``final`` is False when more data could change the answer (``days_needed``
    then says how many more days; None when it cannot be estimated yet).
    ``rule`` is the 1-based number of the rule in ``DECISION_RULES`` that fired.
    """

    outcome: ShipOutcome
    reason: str
    days_needed: int | None
    final: bool
    rule: int
    breached: tuple[str, ...]
    improved: tuple[str, ...]


def decision(
    primary: DecisionInput,
    guardrails: Mapping[str, DecisionInput] | None,
    *,
    mde: float,
    min_days: float,
    days_so_far: float,
    power: float = DEFAULT_POWER,
    srm: SrmResult | None = None,
    segments: HeterogeneityResult | None = None,
    metric_name: str = "conversion",
    treatment_name: str = "B",
) -> ShipDecision:
    """Ship, Discuss or Don't ship, from one primary metric and its guardrails.

    Rules, first match wins (``DECISION_RULES`` holds the same sentences):

    1. Sample ratio mismatch: Don't ship. The traffic split does not match the
       plan, so no number can be trusted; fix the assignment first.
    2. A guardrail got worse (its interval lies entirely on its bad side):
       Don't ship, whatever the primary metric says.
    3. The primary metric got worse (its interval lies entirely on its bad
       side): Don't ship.
    4. The primary metric got better but the test has not run the minimum
       number of days: Don't ship yet; keep running until the minimum is reached.
    5. The primary metric got better but the variant hurts at least one segment
       (country or carrier, after correcting for the number of segments):
       Discuss; consider shipping only where it helps.
    6. The primary metric got better (its interval lies entirely on its good
       side) and no guardrail got worse: Ship.
    7. No clear change on the primary metric, and the test is short of its
       minimum days or of the sample needed to detect the minimum detectable
       effect (MDE) with the planned power: Don't ship yet; keep running for the
       days shown.
    8. No clear change on the primary metric with enough data, but a guardrail
       got better (for example a lower cost per delivered message): Discuss;
       ship only if that gain is worth it on its own.
    9. No clear change on the primary metric with enough data (the interval
       rules out effects as large as the MDE, or the planned sample is
       reached): Don't ship; keep the control.

    "Better"/"worse" read each result's own interval (and direction:
    ``higher_is_better``), so sequential or multiplicity-corrected results
    carry their error control into the decision; for proportions the absolute
    (Newcombe) interval must agree.  Days still needed: the standard error of
    the primary lift shrinks like 1/sqrt(days) at the traffic seen so far, and
    the test has enough data once it is at most MDE / (z_{1-alpha/2} + z_power),
    so days in total = days_so_far * (se / that)^2 (fixed-horizon formula); the
    days to the minimum count too.  ``mde`` is a relative lift (0.02 = 2 %).
    """
    _check_decision_inputs(mde, min_days, days_so_far, power)
    guardrails = dict(guardrails or {})
    _check_guardrail_directions(guardrails)
    breached = tuple(name for name, r in guardrails.items() if _interval_direction(r) == "worse")
    improved = tuple(name for name, r in guardrails.items() if _interval_direction(r) == "better")

    def made(outcome: ShipOutcome, rule: int, reason: str, days: int | None, final: bool) -> ShipDecision:
        return ShipDecision(outcome, reason, days, final, rule, breached, improved)

    if srm is not None and not srm.ok:
        return made("Don't ship", 1, srm.message, None, False)
    if breached:
        hurt = _join([f"{name} got worse, {_describe_effect(guardrails[name])}" for name in breached])
        return made("Don't ship", 2, f"Don't ship {treatment_name}: {hurt}.", 0, True)
    effect = _describe_effect(primary)
    direction = _interval_direction(primary)
    if direction == "worse":
        return made(
            "Don't ship", 3, f"Don't ship {treatment_name}: {metric_name} got worse, {effect}.", 0, True
        )
    min_left = max(0, math.ceil(min_days - days_so_far - 1e-9))
    if direction == "better":
        return _decide_better(
            made, metric_name, effect, guardrails, segments, min_left, min_days, treatment_name
        )
    days_for_power = _days_for_power(primary, mde, power, days_so_far)
    return _decide_unclear(
        made, primary, metric_name, effect, improved, mde, min_left, days_for_power, treatment_name
    )


_MakeDecision = Callable[[ShipOutcome, int, str, int | None, bool], ShipDecision]


def _decide_better(
    made: _MakeDecision,
    metric: str,
    effect: str,
    guardrails: Mapping[str, DecisionInput],
    segments: HeterogeneityResult | None,
    min_left: int,
    min_days: float,
    treatment_name: str,
) -> ShipDecision:
    """Rules 4 to 6: the primary metric improved."""
    if min_left > 0:
        reason = (
            f"Don't ship {treatment_name} yet: {metric} looks better, {effect}, but the test must run at least "
            f"{min_days:g} days (weekday and novelty effects can still erase an early win); "
            f"{_days_phrase(min_left)} to go."
        )
        return made("Don't ship", 4, reason, min_left, False)
    hurt = [s.segment for s in segments.segments if s.direction == "worse"] if segments else []
    if hurt and segments is not None:
        reason = (
            f"Discuss: {metric} is better overall, {effect}, but {treatment_name} hurts {_join(hurt)} "
            f"({_correction_name(segments.correction)}-corrected across {len(segments.segments)} segments); "
            "consider shipping it only where it helps."
        )
        return made("Discuss", 5, reason, 0, True)
    reason = f"Ship {treatment_name}: {metric} is better, {effect}" + _guardrail_phrase(guardrails) + "."
    return made("Ship", 6, reason, 0, True)


def _decide_unclear(
    made: _MakeDecision,
    primary: DecisionInput,
    metric: str,
    effect: str,
    improved: tuple[str, ...],
    mde: float,
    min_left: int,
    days_for_power: int | None,
    treatment_name: str,
) -> ShipDecision:
    """Rules 7 to 9: no clear change on the primary metric."""
    inside = _inside_mde(primary, mde)
    short_of_power = not inside and (days_for_power is None or days_for_power > 0)
    if min_left > 0 or short_of_power:
        # An interval already inside +/-MDE needs no more power, only the minimum days.
        days = min_left if inside else None if days_for_power is None else max(min_left, days_for_power)
        how_long = (
            f"; there is not enough data yet to say how long it takes to detect a {_pct(mde)} change"
            if days is None
            else f" about {_days_phrase(days)} to detect a {_pct(mde)} change"
        )
        reason = (
            f"Don't ship {treatment_name} yet: no clear change in {metric} so far, {effect}; "
            f"keep running{how_long}."
        )
        return made("Don't ship", 7, reason, days, False)
    enough = (
        f"which rules out a {_pct(mde)} change"
        if inside
        else f"although the test has enough data to detect a {_pct(mde)} change"
    )
    if improved:
        reason = (
            f"Discuss: no clear change in {metric}, {effect}, {enough}, but {_join(list(improved))} got "
            f"better; ship {treatment_name} only if that is worth it on its own."
        )
        return made("Discuss", 8, reason, 0, True)
    reason = (
        f"Don't ship {treatment_name}: no clear change in {metric}, {effect}, {enough}; keep the control."
    )
    return made("Don't ship", 9, reason, 0, True)


def _days_phrase(days: int) -> str:
    return "1 more day" if days == 1 else f"{days} more days"


def _check_decision_inputs(mde: float, min_days: float, days_so_far: float, power: float) -> None:
    if not mde > 0:
        raise ValueError("mde must be a positive relative lift, e.g. 0.02 for 2%")
    if min_days < 0 or days_so_far < 0:
        raise ValueError("min_days and days_so_far cannot be negative")
    if not 0 < power < 1:
        raise ValueError("power must be between 0 and 1")


def _check_guardrail_directions(guardrails: Mapping[str, DecisionInput]) -> None:
    # "Opt-out rate", "opt-out" and "OPT-OUT RATE " all name the same standard guardrail.
    standard = {key.removesuffix(" rate"): value for key, value in GUARDRAIL_HIGHER_IS_BETTER.items()}
    for name, result in guardrails.items():
        expected = standard.get(name.strip().lower().removesuffix(" rate"))
        if expected is not None and result.higher_is_better != expected:
            raise ValueError(
                f"guardrail {name!r} is better when {'higher' if expected else 'lower'}: compute its "
                f"result with higher_is_better={expected}"
            )


def _days_for_power(primary: DecisionInput, mde: float, power: float, days_so_far: float) -> int | None:
    """More days until the primary lift's se reaches MDE / (z_{1-alpha/2} + z_power); None if unknown."""
    se = _standard_error(primary)
    if se is None or days_so_far <= 0:
        return None
    target = mde / (fixed_critical_z(primary.alpha) + float(special.ndtri(power)))
    total = days_so_far * (se / target) ** 2
    return max(0, math.ceil(total - days_so_far - 1e-9))


def _standard_error(result: DecisionInput) -> float | None:
    """The standard error of the relative lift (posterior sd for a Bayesian result)."""
    if isinstance(result, (CupedResult, BayesianResult)):
        return result.se
    if result.relative_lift is None or result.ci_low is None or result.ci_high is None:
        return None
    if isinstance(result, ProportionResult):
        # From the counts, so sequential results (wider intervals) give the plain se too.
        p_c, p_t = result.control_rate, result.treatment_rate
        variance = relative_lift_variance(
            p_c, p_c * (1 - p_c) / result.control_users, p_t, p_t * (1 - p_t) / result.treatment_users
        )
        return math.sqrt(variance) if variance > 0 else None
    if result.sequential:
        return None
    return (result.ci_high - result.ci_low) / (2.0 * fixed_critical_z(result.alpha))
