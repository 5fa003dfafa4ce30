"""Experiments, the second-round read (issue 19): the decision card, the Bayesian readout, CUPED, the
"differs by country" check and power from history, built on an ``ExperimentAnalysis``.

Inputs are an analysis (``analysis.analyse_from``), the page's aggregates (``ExperimentData``, for the
per-country arms) and the CUPED / opt-out sums (``data.preperiod_data``). No SQL, no settings, no files.

Choices and why:
* The primary metric is conversion. The decision reads, per treatment, the CUPED-adjusted result when
  CUPED is on and a pre-period exists and the intervals are fixed-horizon (CUPED's intervals are not
  always-valid, so with "I look every day" it uses the sequential unadjusted result); in Bayesian mode
  it reads the posterior (built on the CUPED estimate when CUPED is used, as gbstats does).
* Guardrails: delivery rate, fallback rate, cost per member, and the opt-out rate when the warehouse has
  ``_response_facts`` (else it is skipped and ``guardrail_notes`` says so). Lower is better for all but
  delivery. Each is tested at the same alpha / (treatments) as the primary metric.
* Countries: a country enters the heterogeneity check when each arm has at least ``min_segment_users``
  members there; the per-country lifts are corrected (Holm or BH) across the countries checked.
* With several treatments the card shows the treatment with the best primary lift among those the rules
  would ship, else the first; every treatment's decision is in ``decisions``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from switchboard.analytics.experiments.data import ExperimentData, PrePeriodData
from switchboard.analytics.experiments.model import GUARDRAIL_COLUMNS, ExperimentAnalysis
from switchboard.analytics.experiments.report import _effect_text
from switchboard.analytics.experiments_stats import (
    DEFAULT_POWER,
    BayesianResult,
    CupedResult,
    CupedStats,
    DecisionInput,
    HeterogeneityResult,
    MetricResult,
    ProportionResult,
    ShipDecision,
    bayesian_from_estimate,
    bayesian_proportion_test,
    cuped_test,
    decision,
    effect_direction,
    heterogeneity_test,
    proportion_test,
)

DEFAULT_MIN_DAYS = 7  # a full week, so every weekday is in both arms
DEFAULT_MIN_SEGMENT_USERS = 100
COUNTRY_LIFT_COLUMNS = [
    "treatment", "country_iso2", "country_name", "users", "relative_lift", "ci_low", "ci_high", "p_value",
    "p_value_adjusted", "direction",
]


@dataclass(frozen=True)
class PowerHistory:
    """The MDE calculator's inputs, filled in from the warehouse for the chosen segment and period.

    ``baseline``: control conversion rate; ``variance``: per-member variance p(1 - p), times
    (1 - ``variance_reduction``) when CUPED is used; ``daily_users_per_arm``: members per arm per day
    so far; ``days_more``: the decision's days still needed (None: cannot be estimated yet)."""

    baseline: float | None
    variance: float | None
    variance_reduction: float | None
    daily_users_per_arm: float | None
    days_so_far: int
    mde: float
    days_more: int | None


@dataclass(frozen=True)
class Readout:
    """What the decision card and the second-round sections of the page show (see module docstring)."""

    experiment_id: str
    control: str | None
    featured: str | None
    method: str  # "frequentist" | "bayesian"
    correction: str  # "holm" | "bh"
    cuped_used: bool
    cuped_note: str
    decisions: Mapping[str, ShipDecision]
    primary: Mapping[str, DecisionInput]
    bayesian: Mapping[str, BayesianResult]
    cuped: Mapping[str, CupedResult]
    guardrails: Mapping[str, Mapping[str, DecisionInput]]
    guardrail_notes: tuple[str, ...]
    heterogeneity: Mapping[str, HeterogeneityResult]
    country_lifts: pd.DataFrame
    families: tuple[str, ...]
    power: PowerHistory | None
    min_days: float
    notes: tuple[str, ...] = field(default=())

    @property
    def decision(self) -> ShipDecision | None:
        return self.decisions.get(self.featured) if self.featured else None


def experiment_readout(
    analysis: ExperimentAnalysis,
    page_data: ExperimentData,
    pre: PrePeriodData | None,
    *,
    method: str = "frequentist",
    cuped: bool = True,
    correction: str = "holm",
    min_days: float = DEFAULT_MIN_DAYS,
    min_segment_users: int = DEFAULT_MIN_SEGMENT_USERS,
    power: float = DEFAULT_POWER,
) -> Readout:
    """The decision card and its evidence for every treatment of ``analysis`` (see module docstring)."""
    if method not in ("frequentist", "bayesian"):
        raise ValueError(f"unknown method {method!r}; use 'frequentist' or 'bayesian'")
    if correction not in ("holm", "bh"):
        raise ValueError(f"unknown correction {correction!r}; use 'holm' or 'bh'")
    treatments = [t for t in analysis.treatments if t in analysis.results.get("conversion", {})]
    ci_alpha = analysis.alpha / max(1, len(analysis.treatments))
    cuped_results, cuped_used, cuped_note = _cuped(analysis, pre, treatments, ci_alpha, cuped)
    bayes = {t: _bayesian(analysis, t, cuped_results.get(t) if cuped_used else None, ci_alpha) for t in treatments}
    primary: dict[str, DecisionInput] = {}
    for t in treatments:
        chosen: DecisionInput = analysis.results["conversion"][t]
        if cuped_used and t in cuped_results:
            chosen = cuped_results[t]
        if method == "bayesian" and bayes.get(t) is not None:
            chosen = bayes[t]
        primary[t] = chosen
    guards, guard_notes = _guardrails(analysis, pre, treatments, ci_alpha)
    hetero, lifts = _countries(analysis, page_data, treatments, correction, min_segment_users)
    days = _days_running(analysis)
    decisions = {
        t: decision(primary[t], guards.get(t), mde=analysis.mde_relative, min_days=min_days, days_so_far=days,
                    power=power, srm=analysis.srm, segments=hetero.get(t), treatment_name=t)
        for t in treatments
    }
    featured = _featured(decisions, primary, treatments)
    history = _power_history(analysis, featured, decisions, cuped_results if cuped_used else {}, days)
    return Readout(
        analysis.experiment_id, analysis.control, featured, method, correction, cuped_used, cuped_note, decisions,
        primary, {t: b for t, b in bayes.items() if b is not None}, cuped_results, guards, guard_notes, hetero,
        lifts, _families(analysis, hetero, correction, min_segment_users), history, min_days,
    )


# --------------------------------------------------------------------------- #
# The pieces
# --------------------------------------------------------------------------- #
def cuped_stats(pre: PrePeriodData, variant: str) -> CupedStats | None:
    """One arm's CUPED sums from the per-country rows of ``pre`` (None when the arm has no member)."""
    rows = pre.rows[pre.rows["variant"] == variant]
    n = int(rows["users"].sum())
    if n == 0:
        return None
    y = float(rows["y_sum"].sum())
    return CupedStats(n, y, y, float(rows["x_sum"].sum()), float(rows["x_sum_squares"].sum()),
                      float(rows["xy_sum"].sum()))


def _cuped(analysis: ExperimentAnalysis, pre: PrePeriodData | None, treatments: list[str], ci_alpha: float,
           wanted: bool) -> tuple[dict[str, CupedResult], bool, str]:
    """CUPED per treatment and whether the decision uses it, with the sentence that says why (not)."""
    if pre is None or pre.rows.empty or analysis.control is None:
        return {}, False, "CUPED is off: no pre-period data was read."
    control = cuped_stats(pre, analysis.control)
    if control is None or int(pre.rows["pre_users"].sum()) == 0:
        return {}, False, (f"CUPED is off: no member has any {pre.covariate} in the {pre.pre_days} days before "
                           "their first exposure, so there is nothing to adjust with.")
    results: dict[str, CupedResult] = {}
    for t in treatments:
        arm = cuped_stats(pre, t)
        if arm is not None and arm.n >= 2 and control.n >= 2:
            results[t] = cuped_test(control, arm, alpha=ci_alpha)
    what = f"each member's {pre.covariate} in the {pre.pre_days} days before their first exposure"
    if not wanted:
        return results, False, f"CUPED is off (you turned it off); it would adjust with {what}."
    if analysis.sequential:
        return results, False, ("CUPED is not used for the decision while 'I look every day' is on: its intervals "
                                "are fixed-horizon, so the decision reads the always-valid unadjusted ones.")
    return results, bool(results), f"CUPED is on: it adjusts with {what}."


def _bayesian(analysis: ExperimentAnalysis, t: str, cuped_result: CupedResult | None,
              ci_alpha: float) -> BayesianResult | None:
    """The posterior of the conversion lift (on the CUPED estimate when CUPED is used)."""
    arms = analysis.variants.set_index("variant")
    c, tr = arms.loc[analysis.control], arms.loc[t]
    if cuped_result is not None and cuped_result.relative_lift is not None and cuped_result.se:
        return bayesian_from_estimate(cuped_result.relative_lift, cuped_result.se ** 2,
                                      control_rate=cuped_result.control_mean,
                                      treatment_rate=cuped_result.treatment_mean, alpha=ci_alpha)
    try:
        result = bayesian_proportion_test((int(c.users), int(c.conversions)), (int(tr.users), int(tr.conversions)),
                                          alpha=ci_alpha)
    except ValueError:  # an arm without members
        return None
    return result if result.expected is not None else None


_GUARDRAIL_METRICS = {"delivery": "delivery rate", "fallback": "fallback rate", "cost_per_user": "cost per member"}


def _guardrails(analysis: ExperimentAnalysis, pre: PrePeriodData | None, treatments: list[str], ci_alpha: float
                ) -> tuple[dict[str, dict[str, DecisionInput]], tuple[str, ...]]:
    """Per treatment: guardrail name -> result (the analysis's, plus the opt-out rate when measured)."""
    out: dict[str, dict[str, DecisionInput]] = {t: {} for t in treatments}
    for key, name in _GUARDRAIL_METRICS.items():
        for t, result in analysis.results.get(key, {}).items():
            if t in out:
                out[t][name] = result
    if pre is None or not pre.has_responses:
        return out, (("Opt-out rate: not measured (this warehouse has no classified replies, _response_facts); "
                     "the decision does not check it."),)
    control = _arm_counts(pre, analysis.control)
    for t in treatments:
        treated = _arm_counts(pre, t)
        if control[0] > 0 and treated[0] > 0:
            out[t]["opt-out rate"] = proportion_test(control, treated, ci_alpha, sequential=analysis.sequential,
                                                     higher_is_better=False)
    return out, ("Opt-out rate: members who replied STOP (or another opt-out word) after their first exposure.",)


def _arm_counts(pre: PrePeriodData, variant: str | None) -> tuple[int, int]:
    rows = pre.rows[pre.rows["variant"] == variant]
    return int(rows["users"].sum()), int(rows["opt_out_users"].sum())


def _countries(analysis: ExperimentAnalysis, page_data: ExperimentData, treatments: list[str], correction: str,
               min_users: int) -> tuple[dict[str, HeterogeneityResult], pd.DataFrame]:
    """Per treatment: Cochran's Q across the countries with enough members, and the corrected lifts."""
    df = page_data.aggregates
    df = df[(df["experiment_id"] == analysis.experiment_id) & df["segment"].notna()]
    arms = df.groupby(["segment", "variant"]).agg(users=("users", "sum"), conversions=("conversions", "sum"),
                                                   name=("segment_name", "first"))
    names = arms["name"].groupby(level=0).first().to_dict()
    results: dict[str, HeterogeneityResult] = {}
    rows: list[dict[str, object]] = []
    for t in treatments:
        per_country = _country_tests(arms, analysis.control, t, min_users, analysis.alpha)
        if len(per_country) < 2:
            continue
        h = heterogeneity_test(per_country, alpha=analysis.alpha, correction=correction)
        results[t] = h
        users = {iso: int(arms.loc[(iso, v), "users"]) for iso in per_country for v in (analysis.control, t)
                 if (iso, v) in arms.index}
        rows += [{"treatment": t, "country_iso2": s.segment, "country_name": names.get(s.segment, s.segment),
                  "users": users.get(s.segment, 0), "relative_lift": s.lift, "ci_low": s.ci_low, "ci_high": s.ci_high,
                  "p_value": s.p_value, "p_value_adjusted": s.p_value_adjusted, "direction": s.direction}
                 for s in h.segments]
    return results, pd.DataFrame(rows, columns=COUNTRY_LIFT_COLUMNS)


def _country_tests(arms: pd.DataFrame, control: str | None, t: str, min_users: int, alpha: float
                   ) -> dict[str, ProportionResult]:
    out: dict[str, ProportionResult] = {}
    for iso in arms.index.get_level_values(0).unique():
        if (iso, control) not in arms.index or (iso, t) not in arms.index:
            continue
        c, tr = arms.loc[(iso, control)], arms.loc[(iso, t)]
        if min(int(c.users), int(tr.users)) < max(2, min_users) or not 0 < int(c.conversions):
            continue
        out[str(iso)] = proportion_test((int(c.users), int(c.conversions)), (int(tr.users), int(tr.conversions)),
                                        alpha)
    return out


def _days_running(analysis: ExperimentAnalysis) -> int:
    v = analysis.variants
    if v.empty:
        return 0
    return int((pd.to_datetime(v["last_day"]).max() - pd.to_datetime(v["first_day"]).min()).days) + 1


def _featured(decisions: Mapping[str, ShipDecision], primary: Mapping[str, DecisionInput],
              treatments: list[str]) -> str | None:
    ships = [t for t in treatments if decisions[t].outcome == "Ship"]
    if ships:
        return max(ships, key=lambda t: primary[t].relative_lift or -math.inf)
    return treatments[0] if treatments else None


def _power_history(analysis: ExperimentAnalysis, featured: str | None, decisions: Mapping[str, ShipDecision],
                   cuped_results: Mapping[str, CupedResult], days: int) -> PowerHistory | None:
    if analysis.control is None or featured is None:
        return None
    arms = analysis.variants.set_index("variant")
    users = int(arms.loc[analysis.control, "users"])
    baseline = float(arms.loc[analysis.control, "conversion_rate"]) if users else None
    reduction = cuped_results[featured].variance_reduction if featured in cuped_results else None
    variance = None if baseline is None else baseline * (1 - baseline) * (1 - (reduction or 0.0))
    daily = float(arms.loc[[analysis.control, featured], "users"].mean()) / days if days else None
    return PowerHistory(baseline, variance, reduction, daily, days, analysis.mde_relative,
                        decisions[featured].days_needed)


def _families(analysis: ExperimentAnalysis, hetero: Mapping[str, HeterogeneityResult], correction: str,
              min_users: int) -> tuple[str, ...]:
    """The families of tests the correction runs over, in words (stated on the page)."""
    name = "Benjamini-Hochberg (false discovery rate)" if correction == "bh" else "Holm (family-wise error)"
    m = len(analysis.treatments)
    out = [(f"Variants: {name} across the {m} treatment{'s' if m != 1 else ''} vs {analysis.control}, per metric; "
           f"intervals at {100 * (1 - analysis.alpha / max(1, m)):.4g}%.")]
    for t, h in hetero.items():
        out.append(f"Countries, {t}: {name} across the {len(h.segments)} countries with at least {min_users} "
                   f"members in each arm.")
    return tuple(out)


def guardrail_table(r: Readout) -> pd.DataFrame:
    """Every guardrail the decision read, per treatment (``GUARDRAIL_COLUMNS``): the effect in words, its
    direction, and ``hurt`` when its whole interval is on the bad side (which blocks shipping)."""
    rows = []
    for t, guards in r.guardrails.items():
        for name, result in guards.items():
            direction = effect_direction(result) if isinstance(result, MetricResult) else "unclear"
            rows.append({"guardrail": name, "variant": t, "effect": _effect_text(result), "direction": direction,
                         "hurt": direction == "worse"})
    return pd.DataFrame(rows, columns=GUARDRAIL_COLUMNS)
