"""Experiments, the statistics: per-variant arms (control first), every metric's test, SRM, power,
guardrails and the verdict. Takes the aggregates from ``data``, the experiment's plan (a lookup,
see ``plan``) and the minimum sample size as parameters: no settings, no files, no SQL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.experiments.data import ExperimentData
from switchboard.analytics.experiments.model import (
    _INT_COLUMNS,
    _SUM_COLUMNS,
    CONTROL_NAMES,
    COUNTRY_COLUMNS,
    DEFAULT_MDE,
    DEFAULT_MIN_SAMPLE_SIZE,
    EXPERIMENT_COLUMNS,
    GUARDRAIL_COLUMNS,
    GUARDRAIL_NAMES,
    METRIC_COLUMNS,
    METRICS,
    NO_PLAN,
    VARIANT_COLUMNS,
    ExperimentAnalysis,
    ExperimentPlan,
    MetricSpec,
    PlanLookup,
    PowerPlan,
    no_plans,
)
from switchboard.analytics.experiments.plan import planned_weights
from switchboard.analytics.experiments.report import (
    _effect_text,
    _notes,
    _one_arm_verdict,
    _overall_verdict,
    _too_early,
)
from switchboard.analytics.experiments_stats import (
    Arm,
    MeanStats,
    MetricResult,
    ProportionResult,
    RatioStats,
    SrmResult,
    Verdict,
    benjamini_hochberg,
    compare_variants,
    days_needed,
    effect_direction,
    holm_adjust,
    mean_test,
    minimum_detectable_effect,
    proportion_test,
    ratio_test,
    required_sample_size,
    srm_check,
    verdict,
)


def _div(num: pd.Series, den: pd.Series) -> pd.Series:
    den = den.astype("float64")
    return (num.astype("float64") / den.where(den != 0)).astype("float64")


def _with_rates(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["conversion_rate"] = _div(df["conversions"], df["users"])
    df["delivery_rate"] = _div(df["delivered_users"], df["delivery_known_users"])
    df["fallback_rate"] = _div(df["fallback_users"], df["users"])
    df["cost_per_user"] = _div(df["cost_sum"], df["users"])
    df["cost_per_conversion"] = _div(df["cost_sum"], df["conversions"])
    df["time_to_convert_mean"] = _div(df["time_to_convert_sum"], df["conversions"])
    return df


def _control_first(variants: Sequence[str], control: str | None = None,
                   planned: Sequence[str] | None = None) -> list[str]:
    """Control first, then the treatments (in planned order, else name order).

    The control is ``control`` when given, else the first planned variant (the
    experiment's recorded plan lists the control first), else a variant called
    control / A / baseline (case-insensitive), else the first name in sort order.
    """
    names = sorted(variants)
    if planned:
        rank = {v: i for i, v in enumerate(planned)}
        names = sorted(names, key=lambda v: (rank.get(v, len(rank)), v))
        if control is None and planned[0] in names:
            control = planned[0]
    if control is None or control not in names:
        by_lower = {v.lower(): v for v in names}
        control = next((by_lower[c] for c in CONTROL_NAMES if c in by_lower), names[0] if names else None)
    return ([control] if control else []) + [v for v in names if v != control]


def _collapse(df: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and variant, summing the segments (each member is in one segment, their first
    exposure's, so counts and per-member sums add up; first_day is the min, last_day the max)."""
    how: dict[str, str] = {c: "sum" for c in _SUM_COLUMNS}
    how.update(first_day="min", last_day="max")
    out = df.groupby(["experiment_id", "variant"], as_index=False, sort=True).agg(how)
    for c in _SUM_COLUMNS:
        out[c] = out[c].astype("int64" if c in _INT_COLUMNS else "float64")
    return out


def _arms(df: pd.DataFrame, experiment_id: str, control: str | None, plan: ExperimentPlan | None) -> pd.DataFrame:
    """``variant_metrics``'s frame from ``_aggregates`` rows (any segment) of ``experiment_id``."""
    df = _collapse(df[df["experiment_id"] == experiment_id])
    plan = plan or NO_PLAN
    order = _control_first(df["variant"].tolist(), control, plan.variants)
    df = df.set_index("variant").loc[order].reset_index() if order else df
    return _with_rates(df)[VARIANT_COLUMNS].reset_index(drop=True)


def _metric_test(spec: MetricSpec, c: pd.Series, t: pd.Series, alpha: float, sequential: bool) -> MetricResult | None:
    """One treatment vs control on one metric, or None when the data cannot support it."""
    try:
        if spec.key == "conversion":
            return proportion_test((int(c.users), int(c.conversions)), (int(t.users), int(t.conversions)), alpha,
                                   sequential=sequential)
        if spec.key == "delivery":
            return proportion_test((int(c.delivery_known_users), int(c.delivered_users)),
                                   (int(t.delivery_known_users), int(t.delivered_users)), alpha,
                                   sequential=sequential)
        if spec.key == "fallback":
            return proportion_test((int(c.users), int(c.fallback_users)), (int(t.users), int(t.fallback_users)),
                                   alpha, sequential=sequential, higher_is_better=False)
        if spec.key == "cost_per_user":
            return mean_test(MeanStats(int(c.users), float(c.cost_sum), float(c.cost_sum_squares)),
                             MeanStats(int(t.users), float(t.cost_sum), float(t.cost_sum_squares)), alpha,
                             sequential=sequential, higher_is_better=False)
        if spec.key == "cost_per_conversion":
            return ratio_test(_ratio_stats(c), _ratio_stats(t), alpha, sequential=sequential, higher_is_better=False)
        if spec.key == "time_to_convert":
            return mean_test(
                MeanStats(int(c.conversions), float(c.time_to_convert_sum), float(c.time_to_convert_sum_squares)),
                MeanStats(int(t.conversions), float(t.time_to_convert_sum), float(t.time_to_convert_sum_squares)),
                alpha, sequential=sequential, higher_is_better=False)
    except ValueError:  # an arm without users / fewer than 2 units: no test, the row says so
        return None
    raise KeyError(spec.key)


def _ratio_stats(arm: pd.Series) -> RatioStats:
    # Conversions are 0/1 per member, so sum(y^2) = sum(y).
    return RatioStats(int(arm.users), float(arm.cost_sum), float(arm.cost_sum_squares), float(arm.conversions),
                      float(arm.conversions), float(arm.cost_conversion_sum_product))


def _compare_metric(spec: MetricSpec, arms: pd.DataFrame, alpha: float, sequential: bool,
                    correction: str = "holm") -> tuple[dict[str, MetricResult], dict[str, float | None]]:
    """Every treatment vs control on ``spec``; results at alpha / m and Holm- (or BH-) adjusted p-values."""
    m = len(arms) - 1
    control = arms.iloc[0]
    if spec.key == "conversion":
        comparisons = compare_variants(
            [Arm(str(r.variant), int(r.users), int(r.conversions)) for r in arms.itertuples()],
            alpha, "bh" if correction == "bh" else "holm", sequential=sequential)
        return ({c.treatment: c.result for c in comparisons},
                {c.treatment: c.p_value_adjusted for c in comparisons})
    ci_alpha = alpha / m
    results: dict[str, MetricResult] = {}
    for _, row in arms.iloc[1:].iterrows():
        result = _metric_test(spec, control, row, ci_alpha, sequential)
        if result is not None:
            results[str(row.variant)] = result
    names = list(results)
    raw = [results[n].p_value for n in names]
    # Holm over the m comparisons; one that has no p-value counts as p = 1 (conservative).
    filled = [1.0 if p is None else p for p in raw] + [1.0] * (m - len(names))
    adjusted = (benjamini_hochberg(filled) if correction == "bh" else holm_adjust(filled))[: len(names)]
    return results, {n: (None if p is None else a) for n, p, a in zip(names, raw, adjusted)}


def _value(spec: MetricSpec, row: pd.Series) -> float:
    column = {"conversion": "conversion_rate", "delivery": "delivery_rate", "fallback": "fallback_rate",
              "cost_per_user": "cost_per_user", "cost_per_conversion": "cost_per_conversion",
              "time_to_convert": "time_to_convert_mean"}[spec.key]
    return float(row[column])


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _metric_rows(spec: MetricSpec, arms: pd.DataFrame, results: Mapping[str, MetricResult],
                 adjusted: Mapping[str, float | None]) -> list[dict[str, Any]]:
    rows = []
    for i, (_, arm) in enumerate(arms.iterrows()):
        variant = str(arm.variant)
        users = int(arm.delivery_known_users if spec.key == "delivery" else
                    arm.conversions if spec.key == "time_to_convert" else arm.users)
        row: dict[str, Any] = {
            "metric": spec.key, "label": spec.label, "role": spec.role, "variant": variant, "is_control": i == 0, "users": users,
            "value": _value(spec, arm), "unit": spec.unit, "relative_lift": math.nan, "rel_ci_low": math.nan,
            "rel_ci_high": math.nan, "abs_lift": math.nan, "abs_ci_low": math.nan, "abs_ci_high": math.nan,
            "abs_unit": "pp" if spec.kind == "proportion" else spec.unit, "p_value": math.nan,
            "p_value_adjusted": math.nan, "chance_to_win": math.nan, "direction": "", "higher_is_better": spec.higher_is_better,
            "note": "control" if i == 0 else ""}
        result = results.get(variant)
        if i > 0 and result is None:
            row["note"] = "Not enough data in an arm to compare (needs at least 2 units, and users in every arm)."
        if result is not None:
            row.update(relative_lift=_nan(result.relative_lift), rel_ci_low=_nan(result.ci_low),
                       rel_ci_high=_nan(result.ci_high), p_value=_nan(result.p_value),
                       p_value_adjusted=_nan(adjusted.get(variant)), chance_to_win=_nan(result.chance_to_win),
                       direction=effect_direction(result), note=result.note)
            if isinstance(result, ProportionResult):
                row.update(abs_lift=result.abs_lift, abs_ci_low=result.abs_ci_low, abs_ci_high=result.abs_ci_high)
            else:
                row.update(abs_lift=_nan(result.abs_diff))
        rows.append(row)
    return rows


def _power(arms: pd.DataFrame, days: int, alpha: float, sequential: bool, mde: float) -> PowerPlan:
    control = arms.iloc[0]
    baseline = float(control.conversion_rate) if control.users else math.nan
    per_arm = int(arms["users"].min()) if len(arms) else 0
    n_variants = max(2, len(arms))
    required = more = detectable = None
    if 0 < baseline < 1:
        try:
            required = required_sample_size(baseline, mde, alpha, n_variants=n_variants, sequential=sequential)
            more = days_needed(baseline, mde, per_arm, days, alpha, n_variants=n_variants, sequential=sequential)
        except ValueError:  # baseline * (1 + mde) above 100 %
            required = more = None
        detectable = minimum_detectable_effect(baseline, per_arm, alpha, n_variants=n_variants,
                                               sequential=sequential)
    return PowerPlan(None if math.isnan(baseline) else baseline, mde, per_arm, days, required, more, detectable)


def analyse_frame(
    arms: pd.DataFrame,
    experiment_id: str,
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    weights: Mapping[str, float] | Sequence[float] | None = None,
    weights_source: str | None = None,
    mde_relative: float = DEFAULT_MDE,
    min_sample_size: int = DEFAULT_MIN_SAMPLE_SIZE,
    window_minutes: float | None = None,
    start: date | None = None,
    end: date | None = None,
    plan: ExperimentPlan | None = None,
    correction: str = "holm",
) -> ExperimentAnalysis:
    """``analyse_experiment`` on an already-aggregated ``variant_metrics`` frame (control first).

    ``correction``: "holm" (default, family-wise) or "bh" (Benjamini-Hochberg, false discovery rate) for
    the p-values across treatments; intervals are at alpha / (arms - 1) either way.

    ``plan``: the experiment's recorded plan (planned weights when ``weights`` is None; none: an equal
    split). ``min_sample_size``: below this many members in any arm the verdict is "too early"."""
    if correction not in ("holm", "bh"):
        raise ValueError(f"unknown correction {correction!r}; use 'holm' or 'bh'")
    arms = arms[arms["users"] > 0].reset_index(drop=True)
    names = [str(v) for v in arms["variant"]]
    control = names[0] if names else None
    treatments = tuple(names[1:])
    planned, source = _resolve_weights(experiment_id, names, weights, weights_source, plan)
    if len(arms) < 2:
        return ExperimentAnalysis(
            experiment_id, control, treatments, arms, pd.DataFrame(columns=METRIC_COLUMNS), {}, None, planned,
            source, pd.DataFrame(columns=GUARDRAIL_COLUMNS), None, _one_arm_verdict(names), {}, alpha, sequential,
            window_minutes, mde_relative, start, end, ())
    results: dict[str, dict[str, MetricResult]] = {}
    rows: list[dict[str, Any]] = []
    for spec in METRICS:
        res, adjusted = _compare_metric(spec, arms, alpha, sequential, correction)
        results[spec.key] = res
        rows += _metric_rows(spec, arms, res, adjusted)
    srm = srm_check([int(u) for u in arms["users"]], planned)
    power = _power(arms, _days_running(arms), alpha, sequential, mde_relative)
    guards, per_treatment = _guardrails_and_verdicts(results, treatments, control, srm, power, mde_relative)
    overall = _overall_verdict(per_treatment, results["conversion"], power)
    early = _too_early(arms, min_sample_size)
    if early is not None and overall.decision != "blocked: SRM":
        overall = early
        per_treatment = {t: early for t in per_treatment}
    return ExperimentAnalysis(
        experiment_id, control, treatments, arms, pd.DataFrame(rows, columns=METRIC_COLUMNS), results, srm, planned,
        source, guards, power, overall, per_treatment, alpha, sequential, window_minutes, mde_relative, start, end,
        _notes(arms, treatments, alpha))


def _guardrails_and_verdicts(results: Mapping[str, Mapping[str, MetricResult]], treatments: Sequence[str],
                             control: str | None, srm: SrmResult, power: PowerPlan, mde_relative: float,
                             ) -> tuple[pd.DataFrame, dict[str, Verdict]]:
    """The guardrail rows (``GUARDRAIL_COLUMNS``) and each treatment's verdict on conversion."""
    guard_rows, per_treatment = [], {}
    for t in treatments:
        guards = {GUARDRAIL_NAMES[k]: results[k][t] for k in GUARDRAIL_NAMES if t in results[k]}
        for k, name in GUARDRAIL_NAMES.items():
            if t in results[k]:
                direction = effect_direction(results[k][t])
                guard_rows.append({"guardrail": name, "variant": t, "effect": _effect_text(results[k][t]),
                                   "direction": direction, "hurt": direction == "worse"})
        if t not in results["conversion"]:
            continue
        per_treatment[t] = verdict(results["conversion"][t], guardrails=guards, srm=srm, days_more=power.days_more,
                                   mde_relative=mde_relative, metric_name="conversion", control_name=control or "A",
                                   treatment_name=t)
    return pd.DataFrame(guard_rows, columns=GUARDRAIL_COLUMNS), per_treatment


def _resolve_weights(experiment_id: str, names: Sequence[str], weights: Mapping[str, float] | Sequence[float] | None,
                     source: str | None, plan: ExperimentPlan | None = None) -> tuple[tuple[float, ...], str]:
    if weights is None:
        return planned_weights(experiment_id, names, plan=plan)
    if isinstance(weights, Mapping):
        missing = [n for n in names if n not in weights]
        if missing:
            raise ValueError(f"no planned weight for variant(s) {', '.join(missing)}")
        return tuple(float(weights[n]) for n in names), source or "planned split given by the caller"
    if len(weights) != len(names):
        raise ValueError("need one planned weight per variant")
    return tuple(float(w) for w in weights), source or "planned split given by the caller"


def _days_running(arms: pd.DataFrame) -> int:
    first, last = pd.to_datetime(arms["first_day"]).min(), pd.to_datetime(arms["last_day"]).max()
    if pd.isna(first) or pd.isna(last):
        return 0
    return int((last - first).days) + 1


def _experiment_list(df: pd.DataFrame, last_data_day: date | None, *, start: date | None, end: date | None,
                     window_minutes: float | None, sequential: bool, alpha: float,
                     mde_relative: float, plans: PlanLookup | None = None,
                     min_sample_size: int = DEFAULT_MIN_SAMPLE_SIZE) -> pd.DataFrame:
    """``list_experiments``'s frame from ``_aggregates`` rows (any segment)."""
    plans = plans or no_plans
    if df.empty:
        return _sql.empty(EXPERIMENT_COLUMNS)
    rows = []
    for experiment_id in dict.fromkeys(df["experiment_id"]):
        plan = plans(str(experiment_id))
        arms = _arms(df, experiment_id, None, plan)
        order = arms["variant"].tolist()
        analysis = analyse_frame(arms, str(experiment_id), alpha=alpha, sequential=sequential,
                                 mde_relative=mde_relative, window_minutes=window_minutes, start=start, end=end,
                                 plan=plan, min_sample_size=min_sample_size)
        first, last = pd.to_datetime(arms["first_day"]).min(), pd.to_datetime(arms["last_day"]).max()
        running = last_data_day is not None and (pd.Timestamp(last_data_day) - last).days <= 1
        rows.append({
            "experiment_id": str(experiment_id), "variants": ", ".join(order), "users": int(arms["users"].sum()),
            "first_day": first.date(), "last_day": last.date(), "days_running": int((last - first).days) + 1,
            "status": "running" if running else "ended", "decision": analysis.verdict.decision,
            "verdict": analysis.verdict.sentence})
    out = pd.DataFrame(rows, columns=EXPERIMENT_COLUMNS)
    return out.sort_values(["last_day", "experiment_id"], ascending=[False, True]).reset_index(drop=True)


def _country_rows(df: pd.DataFrame, experiment_id: str, top_n: int, *, alpha: float, sequential: bool,
                  control: str | None, plan: ExperimentPlan = NO_PLAN) -> pd.DataFrame:
    """``country_breakdown``'s frame from ``_aggregates(..., segment="country")`` rows."""
    df = df[df["experiment_id"] == experiment_id].copy()
    if df.empty:
        return _sql.empty(COUNTRY_COLUMNS)
    df["segment"] = df["segment"].fillna("??")
    df["segment_name"] = df["segment_name"].fillna(df["segment"])
    totals = df.groupby("segment")["users"].sum().sort_values(ascending=False, kind="stable")
    top = list(totals.index[:top_n])
    df.loc[~df["segment"].isin(top), ["segment", "segment_name"]] = ["OTHER", "Other"]
    sums = df.groupby(["segment", "segment_name", "variant"], as_index=False)[["users", "conversions"]].sum()
    order = _control_first(sums["variant"].unique().tolist(), control, plan.variants)
    rows = []
    for segment in top + (["OTHER"] if (sums["segment"] == "OTHER").any() else []):
        part = sums[sums["segment"] == segment].set_index("variant")
        ctrl = part.loc[order[0]] if order[0] in part.index else None
        for i, variant in enumerate(v for v in order if v in part.index):
            arm = part.loc[variant]
            row = {"country_iso2": segment if segment != "OTHER" else None, "country_name": arm.segment_name,
                       "variant": variant, "is_control": variant == order[0], "users": int(arm.users),
                       "conversions": int(arm.conversions),
                       "conversion_rate": arm.conversions / arm.users if arm.users else math.nan,
                       "relative_lift": math.nan, "rel_ci_low": math.nan, "rel_ci_high": math.nan, "abs_lift": math.nan,
                       "abs_ci_low": math.nan, "abs_ci_high": math.nan, "p_value": math.nan, "exploratory": True}
            if variant != order[0] and ctrl is not None and ctrl.users > 0 and arm.users > 0:
                r = proportion_test((int(ctrl.users), int(ctrl.conversions)), (int(arm.users), int(arm.conversions)),
                                    alpha, sequential=sequential)
                row.update(relative_lift=_nan(r.relative_lift), rel_ci_low=_nan(r.ci_low),
                           rel_ci_high=_nan(r.ci_high), abs_lift=r.abs_lift, abs_ci_low=r.abs_ci_low,
                           abs_ci_high=r.abs_ci_high, p_value=_nan(r.p_value))
            rows.append(row)
    return pd.DataFrame(rows, columns=COUNTRY_COLUMNS)


def list_from(data: ExperimentData, *, sequential: bool = False, alpha: float = 0.05,
              mde_relative: float = DEFAULT_MDE, plans: PlanLookup | None = None,
              min_sample_size: int = DEFAULT_MIN_SAMPLE_SIZE) -> pd.DataFrame:
    """``list_experiments`` over the same period, filters and window, from ``data``."""
    return _experiment_list(data.aggregates, data.last_data_day, start=data.start, end=data.end,
                            window_minutes=data.window_minutes, sequential=sequential, alpha=alpha,
                            mde_relative=mde_relative, plans=plans, min_sample_size=min_sample_size)


def analyse_from(data: ExperimentData, experiment_id: str, *, sequential: bool = False, alpha: float = 0.05,
                 weights: Mapping[str, float] | Sequence[float] | None = None, mde_relative: float = DEFAULT_MDE,
                 min_sample_size: int = DEFAULT_MIN_SAMPLE_SIZE, control: str | None = None,
                 plans: PlanLookup | None = None, correction: str = "holm") -> ExperimentAnalysis:
    """``analyse_experiment`` over the same period, filters and window, from ``data``."""
    plan = (plans or no_plans)(experiment_id)
    arms = _arms(data.aggregates, experiment_id, control, plan)
    return analyse_frame(arms, experiment_id, alpha=alpha, sequential=sequential, weights=weights,
                         mde_relative=mde_relative, min_sample_size=min_sample_size,
                         window_minutes=data.window_minutes, start=data.start, end=data.end, plan=plan,
                         correction=correction)


def country_breakdown_from(data: ExperimentData, experiment_id: str, top_n: int = 5, *, alpha: float = 0.05,
                           sequential: bool = False, control: str | None = None,
                           plans: PlanLookup | None = None) -> pd.DataFrame:
    """``country_breakdown`` over the same period, filters and window, from ``data``."""
    return _country_rows(data.aggregates, experiment_id, top_n, alpha=alpha, sequential=sequential,
                         control=control, plan=(plans or no_plans)(experiment_id))
