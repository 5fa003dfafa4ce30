"""A/B experiments, the data half: per-variant aggregates in SQL, statistics from experiments_stats.

What counts (the definitions the Experiments page and the PM summary use)
-------------------------------------------------------------------------
* **Assignment unit: the member (``user_id``).** An experiment's exposures are its
  non-fallback attempts in ``attempt_facts`` (``experiment_id`` and ``variant`` set).
  A member belongs to the variant of their **first exposure**; later attempts count
  with that variant (intent to treat), and members seen in more than one variant are
  reported as ``switched_users`` (an assignment bug worth a look).
* **Conversion**: the member's first conversion after their first exposure happened
  within the window. ``window_minutes=None`` reads the warehouse's fixed ``converted``
  column (setting ``conversion_window_minutes``); a number recomputes it from
  ``minutes_to_conversion``.
* **Delivery** (guardrail): the first exposure was delivered (SMS delivered / call
  answered), over members whose first exposure has a known outcome.
* **Fallback rate**: the first exposure triggered a voice fallback.
* **Cost per member** (guardrail): USD of every exposure of the member plus the
  fallbacks they triggered. **Cost per conversion**: sum(cost) / sum(conversions), a
  ratio metric (delta method with the per-member covariance).
* **Time to convert**: minutes from first exposure to conversion, among converters
  (so it is conditional on converting: read it next to the conversion rate).

Relative lifts are fractions (0.041 = +4.1 %); absolute lifts of rates are percentage
points (Newcombe interval). With more than one treatment, p-values are Holm-adjusted
across treatments and intervals are built at alpha / (arms - 1) (see
``experiments_stats.compare_variants``).

Filters: the sidebar's template and channel filters are *not* applied, because the
template (or channel order) is usually what the experiment varies, and filtering on
it would drop arms; country, purpose and the extra filters are applied.

Planned weights come from the caller, else from ``ground_truth.json`` (or
``experiments.json``) written by the sandbox beside the send logs, else an equal split,
and ``ExperimentAnalysis.weights_source`` says which.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.experiments_stats import (
    CHANCE_TO_WIN_EXPLAINED,
    Arm,
    MeanStats,
    MetricResult,
    ProportionResult,
    RatioStats,
    SrmResult,
    Verdict,
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
from switchboard.analytics.filters import Filters

DEFAULT_MDE = 0.05  # the relative lift we plan to detect, unless the caller says otherwise
_ALL_TIME = (date(1900, 1, 1), date(2999, 12, 31))
CONTROL_NAMES = ("control", "a", "baseline", "ctrl", "original")

VARIANT_COLUMNS = [
    "variant", "users", "delivery_known_users", "delivered_users", "conversions", "fallback_users",
    "attempts", "switched_users", "cost_sum", "cost_sum_squares", "cost_conversion_sum_product",
    "time_to_convert_sum", "time_to_convert_sum_squares", "first_day", "last_day",
    "conversion_rate", "delivery_rate", "fallback_rate", "cost_per_user", "cost_per_conversion",
    "time_to_convert_mean",
]
EXPERIMENT_COLUMNS = [
    "experiment_id", "variants", "users", "first_day", "last_day", "days_running", "status",
    "decision", "verdict",
]
METRIC_COLUMNS = [
    "metric", "label", "role", "variant", "is_control", "users", "value", "unit",
    "relative_lift", "rel_ci_low", "rel_ci_high", "abs_lift", "abs_ci_low", "abs_ci_high", "abs_unit",
    "p_value", "p_value_adjusted", "chance_to_win", "direction", "higher_is_better", "note",
]
GUARDRAIL_COLUMNS = ["guardrail", "variant", "effect", "direction", "hurt"]
COUNTRY_COLUMNS = [
    "country_iso2", "country_name", "variant", "is_control", "users", "conversions", "conversion_rate",
    "relative_lift", "rel_ci_low", "rel_ci_high", "abs_lift", "abs_ci_low", "abs_ci_high", "p_value",
    "exploratory",
]
_SUM_COLUMNS = VARIANT_COLUMNS[1:13]

# Segments for the breakdown: public name -> SQL on the first exposure (alias f). The allow-list.
_SEGMENTS: dict[str, tuple[str, str]] = {
    "none": ("CAST(NULL AS VARCHAR)", "CAST(NULL AS VARCHAR)"),
    "country": ("f.country_iso2", "f.country_name"),
}


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    role: str  # primary | guardrail | secondary
    kind: str  # proportion | mean | ratio
    higher_is_better: bool
    unit: str


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("conversion", "Conversion rate", "primary", "proportion", True, "rate"),
    MetricSpec("delivery", "Delivery rate", "guardrail", "proportion", True, "rate"),
    MetricSpec("cost_per_user", "Cost per member", "guardrail", "mean", False, "USD"),
    MetricSpec("fallback", "Voice fallback rate", "secondary", "proportion", False, "rate"),
    MetricSpec("cost_per_conversion", "Cost per conversion", "secondary", "ratio", False, "USD"),
    MetricSpec("time_to_convert", "Time to convert (converters)", "secondary", "mean", False, "min"),
)
_METRIC = {m.key: m for m in METRICS}
# Names the verdict sentence uses for guardrails ("delivery and cost unchanged").
GUARDRAIL_NAMES = {"delivery": "delivery", "cost_per_user": "cost"}


@dataclass(frozen=True)
class PowerPlan:
    """How far the experiment is from detecting ``mde_relative`` on conversion.

    ``days_more`` is 0 once the planned sample is reached, None when it cannot be
    estimated (no traffic, or a control rate of 0 % / 100 %). ``detectable_now`` is the
    smallest relative lift the users so far would detect with 80 % power.
    """

    baseline_rate: float | None
    mde_relative: float
    users_per_arm: int
    days_so_far: int
    required_users_per_arm: int | None
    days_more: int | None
    detectable_now: float | None


@dataclass(frozen=True, eq=False)
class ExperimentAnalysis:
    """Everything the Experiments page and the PM summary show for one experiment.

    * ``variants``: the ``variant_metrics`` frame (control first).
    * ``metrics``: one row per metric and variant (``METRIC_COLUMNS``): value, relative
      lift and interval (fractions), absolute lift and interval (percentage points for
      rates, the metric's unit otherwise), raw and Holm-adjusted p-values, chance to win.
    * ``results``: metric -> treatment -> the experiments_stats result behind each row.
    * ``srm``: check against ``planned_weights`` (None with fewer than two arms).
    * ``guardrails``: ``GUARDRAIL_COLUMNS``; ``hurt`` when the interval is entirely on the bad side.
    * ``verdict``: the overall decision; ``treatment_verdicts`` one per treatment.
    """

    experiment_id: str
    control: str | None
    treatments: tuple[str, ...]
    variants: pd.DataFrame
    metrics: pd.DataFrame
    results: Mapping[str, Mapping[str, MetricResult]]
    srm: SrmResult | None
    planned_weights: tuple[float, ...]
    weights_source: str
    guardrails: pd.DataFrame
    power: PowerPlan | None
    verdict: Verdict
    treatment_verdicts: Mapping[str, Verdict]
    alpha: float
    sequential: bool
    window_minutes: float | None
    mde_relative: float
    start: date | None = None
    end: date | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def level(self) -> str:
        return f"{100 * (1 - self.alpha):.4g}%"


# --------------------------------------------------------------------------- #
# SQL
# --------------------------------------------------------------------------- #
def _experiment_filters(filters: Filters | None) -> Filters:
    """Drop the template and channel filters: they are what experiments vary (module docstring)."""
    filters = filters or Filters()
    return replace(filters, templates=(), channels=())


# _experiment_exposures (ingest/facts.sql): the exposures pre-shaped for the per-member GROUP BY.
# It keeps these attempt_facts columns for the filters (countries -> country_iso2, purposes ->
# purpose; channel and template filters are dropped for experiments) and these Filters.extra ones.
# USE_EXPOSURES_TABLE = False makes every call read attempt_facts (tests compare both paths).
USE_EXPOSURES_TABLE = True
EXPOSURES_TABLE = "_experiment_exposures"
EXPOSURES_MARK = "switchboard experiment exposures v3"
# Valid when nothing but the period and the experiment (constant per member) filters the exposures:
# every exposure of the member lies in [start, end), so its all-time totals are the answer; or the row
# is the member's only exposure in the period (both neighbours, in exposure order, outside it).
_WHOLE_MEMBER = "(a.member_first_at >= $f_start AND a.member_last_at < $f_end)"
_SINGLE_EXPOSURE = ("(a.prev_sent_at IS NULL OR a.prev_sent_at < $f_start) "
                    "AND (a.next_sent_at IS NULL OR a.next_sent_at >= $f_end)")
_EXPOSURES_EXTRA = frozenset({"experiment_id", "variant", "campaign_id", "region"})


def _exposures_ready(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether this warehouse has an up-to-date ``_experiment_exposures``: it carries EXPOSURES_MARK
    (written by this build's facts.sql) and ``_attempt_facts`` carries a comment too (facts.sql marks
    it at the end of a refresh; a refresh by an older build replaces it without one, leaving the
    exposures stale). False on the Parquet export, an older warehouse or a stale one."""
    rows = dict(con.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND list_contains($names, table_name)",
        {"names": [EXPOSURES_TABLE, "_attempt_facts"]}).fetchall())
    return rows.get(EXPOSURES_TABLE) == EXPOSURES_MARK and bool(rows.get("_attempt_facts"))


def _exposures_can_answer(con: duckdb.DuckDBPyConnection, filters: Filters) -> bool:
    """Whether ``_experiment_exposures`` answers a call with these (experiment) filters."""
    return (USE_EXPOSURES_TABLE and all(column in _EXPOSURES_EXTRA for column, _ in filters.extra)
            and _exposures_ready(con))


def _aggregates(
    con: duckdb.DuckDBPyConnection,
    experiment_ids: Sequence[str] | None,
    *,
    start: date | None,
    end: date | None,
    filters: Filters | None,
    window_minutes: float | None,
    segment: str = "none",
) -> pd.DataFrame:
    lo = start or _ALL_TIME[0]
    hi = end or _ALL_TIME[1]
    filters = _experiment_filters(filters)
    where, params = _sql.where_for("attempt_facts", lo, hi, filters, alias="a")
    if segment not in _SEGMENTS:
        raise ValueError(f"Unknown segment {segment!r}; allowed: {', '.join(_SEGMENTS)}")
    segment_sql, segment_name_sql = _SEGMENTS[segment]
    if _exposures_can_answer(con, filters):
        period_only = (not filters.countries and not filters.purposes
                       and all(column == "experiment_id" for column, _ in filters.extra))
        sql = _sql.render("experiments_variant_metrics_exposures", where=where, segment=segment_sql,
                          segment_name=segment_name_sql, whole=_WHOLE_MEMBER if period_only else "false",
                          single=_SINGLE_EXPOSURE if period_only else "false")
    else:
        sql = _sql.render("experiments_variant_metrics", where=where, segment=segment_sql,
                          segment_name=segment_name_sql)
    params.update(
        all_experiments=experiment_ids is None,
        experiment_ids=list(experiment_ids or []),
        window_minutes=None if window_minutes is None else float(window_minutes),
    )
    df = con.execute(sql, params).df()
    for c in _SUM_COLUMNS:
        df[c] = pd.to_numeric(df[c]).astype("int64" if c in _INT_COLUMNS else "float64")
    return df


_INT_COLUMNS = {"users", "delivery_known_users", "delivered_users", "conversions", "fallback_users",
                "attempts", "switched_users"}


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


def variant_metrics(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    start: date | None = None,
    end: date | None = None,
    filters: Filters | None = None,
    window_minutes: float | None = None,
    control: str | None = None,
    plan: ExperimentPlan | None = None,
) -> pd.DataFrame:
    """One row per variant of ``experiment_id``, control first (``VARIANT_COLUMNS``).

    The control is ``control`` when given, else the first variant of the recorded plan
    (``experiment_plan``), else one named control / A / baseline, else the first by name.

    Counts (members): users, delivery_known_users, delivered_users, conversions,
    fallback_users, switched_users; attempts (exposures, fallbacks excluded).
    Sums for the statistics: cost_sum, cost_sum_squares and
    cost_conversion_sum_product (per-member cost x converted, for cost per
    conversion), time_to_convert_sum and _sum_squares (minutes, converters only).
    first_day / last_day of exposure. Rates: conversion_rate, delivery_rate,
    fallback_rate, cost_per_user, cost_per_conversion, time_to_convert_mean (NaN when
    the denominator is 0). ``start``/``end`` None means all time. Empty frame when the
    experiment has no exposures.
    """
    df = _aggregates(con, [experiment_id], start=start, end=end, filters=filters, window_minutes=window_minutes)
    return _arms(df, experiment_id, control, plan)


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
    plan = plan or experiment_plan(experiment_id)
    order = _control_first(df["variant"].tolist(), control, plan.variants)
    df = df.set_index("variant").loc[order].reset_index() if order else df
    return _with_rates(df)[VARIANT_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------- #
# The experiment's plan: variant order (control first) and planned weights
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class ExperimentPlan:
    """What the sandbox / platform recorded about an experiment beside the send logs.

    ``variants``: the planned variants in order, control first (None if unknown);
    ``weights``: planned weight per variant (None if not recorded); ``source``: the file.
    """

    variants: tuple[str, ...] | None
    weights: Mapping[str, float] | None
    source: str | None


def _plan_files() -> list[Path]:
    from switchboard.core.settings import Settings

    s = Settings.from_env()
    names = ("ground_truth.json", "experiments.json")
    dirs = (s.send_logs_dir, s.data_dir, s.data_dir / "sandbox")
    return [d / n for d in dirs for n in names]


def _find_entry(node: Any, experiment_id: str) -> dict[str, Any] | None:
    """The JSON object describing ``experiment_id``, in any of these layouts:

    ``{"experiments": [{"experiment_id"|"id"|"name": "<id>", ...}]}`` (the sandbox's
    ground_truth.json) or ``{"experiments": {"<id>": {...}}}``.
    """
    if isinstance(node, dict):
        for key in ("experiment_id", "experiment", "id", "name"):
            if node.get(key) == experiment_id:
                return node
        if isinstance(node.get(experiment_id), dict):
            return node[experiment_id]
        children = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_entry(child, experiment_id)
        if found is not None:
            return found
    return None


def _plan_from_entry(entry: dict[str, Any]) -> tuple[tuple[str, ...] | None, dict[str, float] | None]:
    """Variant order and weights from an entry: ``"variants": ["A", "B"]`` with ``"weights":
    [.5, .5]`` or ``{"A": .5, ...}``, or ``"variants": [{"name": "A", "weight": .5}, ...]``."""
    raw = entry.get("variants") or entry.get("arms")
    names: tuple[str, ...] | None = None
    weights: dict[str, float] | None = None
    if isinstance(raw, list) and raw:
        if all(isinstance(v, str) for v in raw):
            names = tuple(raw)
        elif all(isinstance(v, dict) for v in raw):
            names = tuple(str(v.get("name") or v.get("variant") or v.get("id")) for v in raw)
            if all(v.get("weight") is not None for v in raw):
                weights = {n: float(v["weight"]) for n, v in zip(names, raw)}
    for key in ("weights", "planned_weights", "split", "traffic_split", "allocation"):
        w = entry.get(key)
        if isinstance(w, dict):
            weights = {str(k): float(v) for k, v in w.items()}
        elif isinstance(w, list) and names is not None and len(w) == len(names):
            weights = {n: float(x) for n, x in zip(names, w)}
    if names is None and weights:
        names = tuple(weights)
    return names, weights


def experiment_plan(experiment_id: str, files: Sequence[Path] | None = None) -> ExperimentPlan:
    """The recorded plan of ``experiment_id`` from the first of ``files`` that mentions it.

    Default files: ground_truth.json / experiments.json in the send-log folder, the data
    folder and data/sandbox (the sandbox writes ground_truth.json beside its send logs).
    Unreadable files are skipped; nothing found gives an empty plan.
    """
    for path in files if files is not None else _plan_files():
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        entry = _find_entry(doc, experiment_id)
        if entry is not None:
            names, weights = _plan_from_entry(entry)
            return ExperimentPlan(names, weights, Path(path).name)
    return ExperimentPlan(None, None, None)


def planned_weights(
    experiment_id: str, variants: Sequence[str], files: Sequence[Path] | None = None,
    plan: ExperimentPlan | None = None,
) -> tuple[tuple[float, ...], str]:
    """The planned split for ``variants`` (in that order) and a sentence saying where it came from.

    From the experiment's plan when it gives a positive weight for every variant;
    otherwise an equal split, and the sentence says it was assumed.
    """
    plan = plan or experiment_plan(experiment_id, files)
    w = plan.weights
    if w and all(v in w and w[v] > 0 for v in variants):
        return tuple(float(w[v]) for v in variants), f"planned split from {plan.source}"
    equal = tuple(1.0 for _ in variants)
    return equal, "no planned split recorded for this experiment: assuming an equal split"


# --------------------------------------------------------------------------- #
# Statistics over the aggregates
# --------------------------------------------------------------------------- #
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


def _compare_metric(spec: MetricSpec, arms: pd.DataFrame, alpha: float, sequential: bool
                    ) -> tuple[dict[str, MetricResult], dict[str, float | None]]:
    """Every treatment vs control on ``spec``; results at alpha / m and Holm-adjusted p-values."""
    m = len(arms) - 1
    control = arms.iloc[0]
    if spec.key == "conversion":
        comparisons = compare_variants(
            [Arm(str(r.variant), int(r.users), int(r.conversions)) for r in arms.itertuples()],
            alpha, "holm", sequential=sequential)
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
    adjusted = holm_adjust(filled)[: len(names)]
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


def _overall_verdict(per_treatment: Mapping[str, Verdict], conversion: Mapping[str, MetricResult],
                     power: PowerPlan | None) -> Verdict:
    """One decision across treatments: the best shippable one, else keep running, else stop / do not ship."""
    if not per_treatment:
        return Verdict("keep running", "Keep running: no treatment arm has members yet.", ("no treatment",))
    if len(per_treatment) == 1:
        return next(iter(per_treatment.values()))
    ships = [t for t, v in per_treatment.items() if v.decision == "ship"]
    if ships:
        best = max(ships, key=lambda t: _lift_for_ranking(conversion[t]))
        return per_treatment[best]
    for decision in ("blocked: SRM", "keep running", "stop: no effect likely", "do not ship"):
        match = [v for v in per_treatment.values() if v.decision == decision]
        if match:
            if decision == "stop: no effect likely" and len(match) == len(per_treatment):
                details = "; ".join(f"{t}: {v.sentence.split(' - ', 1)[-1].rstrip('.')}"
                                    for t, v in per_treatment.items())
                return Verdict(decision, f"Stop: no variant beats the control - {details}.", ("inconclusive",))
            return match[0]
    return next(iter(per_treatment.values()))


def _lift_for_ranking(result: MetricResult) -> float:
    if result.relative_lift is not None:
        return result.relative_lift
    return result.abs_lift / 100 if isinstance(result, ProportionResult) else 0.0


def _too_early(arms: pd.DataFrame, min_sample_size: int) -> Verdict | None:
    smallest = int(arms["users"].min())
    if smallest >= min_sample_size:
        return None
    arm = str(arms.loc[arms["users"].idxmin(), "variant"])
    return Verdict(
        "keep running",
        f"Keep running: too early to read - {arm} has {smallest:,} members so far; results are read once every "
        f"arm has at least {min_sample_size:,}.",
        ("too early",),
    )


def analyse_frame(
    arms: pd.DataFrame,
    experiment_id: str,
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    weights: Mapping[str, float] | Sequence[float] | None = None,
    weights_source: str | None = None,
    mde_relative: float = DEFAULT_MDE,
    min_sample_size: int | None = None,
    window_minutes: float | None = None,
    start: date | None = None,
    end: date | None = None,
    plan: ExperimentPlan | None = None,
) -> ExperimentAnalysis:
    """``analyse_experiment`` on an already-aggregated ``variant_metrics`` frame (control first)."""
    if min_sample_size is None:
        from switchboard.core.settings import Settings

        min_sample_size = Settings.from_env().min_sample_size
    arms = arms[arms["users"] > 0].reset_index(drop=True)
    names = [str(v) for v in arms["variant"]]
    control = names[0] if names else None
    treatments = tuple(names[1:])
    notes: list[str] = []
    planned, source = _resolve_weights(experiment_id, names, weights, weights_source, plan)
    if len(arms) < 2:
        sentence = ("Keep running: no members exposed to this experiment yet." if not names else
                    f"Keep running: only {names[0]} has members so far; nothing to compare yet.")
        return ExperimentAnalysis(
            experiment_id, control, treatments, arms, pd.DataFrame(columns=METRIC_COLUMNS), {}, None, planned,
            source, pd.DataFrame(columns=GUARDRAIL_COLUMNS), None, Verdict("keep running", sentence, ("one arm",)),
            {}, alpha, sequential, window_minutes, mde_relative, start, end, tuple(notes))

    results: dict[str, dict[str, MetricResult]] = {}
    rows: list[dict[str, Any]] = []
    for spec in METRICS:
        res, adjusted = _compare_metric(spec, arms, alpha, sequential)
        results[spec.key] = res
        rows += _metric_rows(spec, arms, res, adjusted)
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)

    srm = srm_check([int(u) for u in arms["users"]], planned)
    days = _days_running(arms)
    power = _power(arms, days, alpha, sequential, mde_relative)
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
    overall = _overall_verdict(per_treatment, results["conversion"], power)
    early = _too_early(arms, min_sample_size)
    if early is not None and overall.decision != "blocked: SRM":
        overall = early
        per_treatment = {t: early for t in per_treatment}
    switched = int(arms["switched_users"].sum()) if "switched_users" in arms else 0
    if switched:
        notes.append(f"{switched:,} members were exposed to more than one variant; each is counted in the variant "
                     "of their first exposure.")
    if len(treatments) > 1:
        notes.append(f"{len(treatments)} treatments: p-values are Holm-adjusted and intervals are at "
                     f"{100 * (1 - alpha / len(treatments)):.4g}% so the family stays at {100 * (1 - alpha):.4g}%.")
    return ExperimentAnalysis(
        experiment_id, control, treatments, arms, metrics, results, srm, planned, source,
        pd.DataFrame(guard_rows, columns=GUARDRAIL_COLUMNS), power, overall, per_treatment, alpha, sequential,
        window_minutes, mde_relative, start, end, tuple(notes))


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


def _effect_text(result: MetricResult) -> str:
    level = f"{100 * (1 - result.alpha):.4g}%"
    if result.relative_lift is not None and result.ci_low is not None and result.ci_high is not None:
        return (f"{100 * result.relative_lift:+.1f}% ({level} CI {100 * result.ci_low:+.1f}% to "
                f"{100 * result.ci_high:+.1f}%)")
    if isinstance(result, ProportionResult):
        return f"{result.abs_lift:+.1f} pp ({level} CI {result.abs_ci_low:+.1f} to {result.abs_ci_high:+.1f} pp)"
    return "not measurable yet"


def analyse_experiment(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    *,
    start: date | None = None,
    end: date | None = None,
    filters: Filters | None = None,
    window_minutes: float | None = None,
    sequential: bool = False,
    alpha: float = 0.05,
    weights: Mapping[str, float] | Sequence[float] | None = None,
    mde_relative: float = DEFAULT_MDE,
    min_sample_size: int | None = None,
    control: str | None = None,
) -> ExperimentAnalysis:
    """The full read of one experiment: metric table, SRM, guardrails, power and the verdict.

    Primary metric: conversion within the window. Guardrails: delivery rate and cost
    per member (hurt when the interval lies entirely on the bad side). Secondary:
    voice-fallback rate, cost per conversion, time to convert. ``sequential=True``
    gives always-valid intervals (safe to look every day). ``weights``: the planned
    split per variant (mapping, or a sequence in control-first order); when None,
    ``planned_weights`` looks it up or assumes an equal split. ``mde_relative``: the
    relative conversion lift the power plan targets. ``min_sample_size`` (default:
    the setting): below this many members in any arm the verdict is "too early".
    """
    plan = experiment_plan(experiment_id)
    arms = variant_metrics(con, experiment_id, start=start, end=end, filters=filters,
                           window_minutes=window_minutes, control=control, plan=plan)
    return analyse_frame(arms, experiment_id, alpha=alpha, sequential=sequential, weights=weights,
                         mde_relative=mde_relative, min_sample_size=min_sample_size,
                         window_minutes=window_minutes, start=start, end=end, plan=plan)


# --------------------------------------------------------------------------- #
# The list of experiments
# --------------------------------------------------------------------------- #
def list_experiments(
    con: duckdb.DuckDBPyConnection,
    *,
    start: date | None = None,
    end: date | None = None,
    filters: Filters | None = None,
    window_minutes: float | None = None,
    sequential: bool = False,
    alpha: float = 0.05,
    mde_relative: float = DEFAULT_MDE,
) -> pd.DataFrame:
    """One row per experiment with exposures in the period (``EXPERIMENT_COLUMNS``).

    variants: "A, B" (control first); users: members exposed; first_day/last_day of
    exposure; days_running; status "running" (exposures on the warehouse's last day
    of data or the day before) or "ended"; decision and verdict: the analysis's
    decision so far and its sentence. Newest experiments first.
    """
    df = _aggregates(con, None, start=start, end=end, filters=filters, window_minutes=window_minutes)
    if df.empty:
        return _sql.empty(EXPERIMENT_COLUMNS)
    return _experiment_list(df, _last_data_day(con), start=start, end=end, window_minutes=window_minutes,
                            sequential=sequential, alpha=alpha, mde_relative=mde_relative)


def _last_data_day(con: duckdb.DuckDBPyConnection) -> date | None:
    row = con.execute("SELECT max(sent_day) FROM attempt_facts").fetchone()
    return row[0] if row else None


def _experiment_list(df: pd.DataFrame, last_data_day: date | None, *, start: date | None, end: date | None,
                     window_minutes: float | None, sequential: bool, alpha: float,
                     mde_relative: float) -> pd.DataFrame:
    """``list_experiments``'s frame from ``_aggregates`` rows (any segment)."""
    if df.empty:
        return _sql.empty(EXPERIMENT_COLUMNS)
    rows = []
    for experiment_id in dict.fromkeys(df["experiment_id"]):
        plan = experiment_plan(str(experiment_id))
        arms = _arms(df, experiment_id, None, plan)
        order = arms["variant"].tolist()
        analysis = analyse_frame(arms, str(experiment_id), alpha=alpha, sequential=sequential,
                                 mde_relative=mde_relative, window_minutes=window_minutes, start=start, end=end,
                                 plan=plan)
        first, last = pd.to_datetime(arms["first_day"]).min(), pd.to_datetime(arms["last_day"]).max()
        running = last_data_day is not None and (pd.Timestamp(last_data_day) - last).days <= 1
        rows.append({
            "experiment_id": str(experiment_id), "variants": ", ".join(order), "users": int(arms["users"].sum()),
            "first_day": first.date(), "last_day": last.date(), "days_running": int((last - first).days) + 1,
            "status": "running" if running else "ended", "decision": analysis.verdict.decision,
            "verdict": analysis.verdict.sentence})
    out = pd.DataFrame(rows, columns=EXPERIMENT_COLUMNS)
    return out.sort_values(["last_day", "experiment_id"], ascending=[False, True]).reset_index(drop=True)


# --------------------------------------------------------------------------- #
# Country breakdown (exploratory)
# --------------------------------------------------------------------------- #
def country_breakdown(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    top_n: int = 5,
    *,
    start: date | None = None,
    end: date | None = None,
    filters: Filters | None = None,
    window_minutes: float | None = None,
    alpha: float = 0.05,
    sequential: bool = False,
    control: str | None = None,
) -> pd.DataFrame:
    """Conversion per variant in the top ``top_n`` countries (by members) plus "Other" (``COUNTRY_COLUMNS``).

    Exploratory: many segments give false positives, so lifts are per segment, not
    corrected for multiplicity, and ``exploratory`` is True on every row; the verdict
    never reads them. Country is the one of the member's first exposure.
    """
    df = _aggregates(con, [experiment_id], start=start, end=end, filters=filters, window_minutes=window_minutes,
                     segment="country")
    return _country_rows(df, experiment_id, top_n, alpha=alpha, sequential=sequential, control=control)


def _country_rows(df: pd.DataFrame, experiment_id: str, top_n: int, *, alpha: float, sequential: bool,
                  control: str | None) -> pd.DataFrame:
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
    order = _control_first(sums["variant"].unique().tolist(), control, experiment_plan(experiment_id).variants)
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


# --------------------------------------------------------------------------- #
# One pass for a whole page: the list, one experiment's analysis and its countries
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class ExperimentData:
    """Every experiment's per-variant aggregates in a period, per country of the first exposure
    (``aggregates``: the ``experiments_variant_metrics.sql`` columns), and the warehouse's last day
    of data. One query; ``list_from``, ``analyse_from`` and ``country_breakdown_from`` derive
    ``list_experiments``, ``analyse_experiment`` and ``country_breakdown`` from it without SQL
    (per-member counts and sums add up over countries: each member is in one, their first
    exposure's). The Experiments page reads it once instead of grouping the exposures three times."""

    aggregates: pd.DataFrame
    last_data_day: date | None
    start: date | None
    end: date | None
    window_minutes: float | None


def experiment_data(
    con: duckdb.DuckDBPyConnection,
    *,
    start: date | None = None,
    end: date | None = None,
    filters: Filters | None = None,
    window_minutes: float | None = None,
) -> ExperimentData:
    """The one query behind a page of experiments (see ``ExperimentData``); same filters as the others."""
    df = _aggregates(con, None, start=start, end=end, filters=filters, window_minutes=window_minutes,
                     segment="country")
    return ExperimentData(df, _last_data_day(con) if not df.empty else None, start, end, window_minutes)


def list_from(data: ExperimentData, *, sequential: bool = False, alpha: float = 0.05,
              mde_relative: float = DEFAULT_MDE) -> pd.DataFrame:
    """``list_experiments`` over the same period, filters and window, from ``data``."""
    return _experiment_list(data.aggregates, data.last_data_day, start=data.start, end=data.end,
                            window_minutes=data.window_minutes, sequential=sequential, alpha=alpha,
                            mde_relative=mde_relative)


def analyse_from(data: ExperimentData, experiment_id: str, *, sequential: bool = False, alpha: float = 0.05,
                 weights: Mapping[str, float] | Sequence[float] | None = None, mde_relative: float = DEFAULT_MDE,
                 min_sample_size: int | None = None, control: str | None = None) -> ExperimentAnalysis:
    """``analyse_experiment`` over the same period, filters and window, from ``data``."""
    plan = experiment_plan(experiment_id)
    arms = _arms(data.aggregates, experiment_id, control, plan)
    return analyse_frame(arms, experiment_id, alpha=alpha, sequential=sequential, weights=weights,
                         mde_relative=mde_relative, min_sample_size=min_sample_size,
                         window_minutes=data.window_minutes, start=data.start, end=data.end, plan=plan)


def country_breakdown_from(data: ExperimentData, experiment_id: str, top_n: int = 5, *, alpha: float = 0.05,
                           sequential: bool = False, control: str | None = None) -> pd.DataFrame:
    """``country_breakdown`` over the same period, filters and window, from ``data``."""
    return _country_rows(data.aggregates, experiment_id, top_n, alpha=alpha, sequential=sequential,
                         control=control)


# --------------------------------------------------------------------------- #
# Exports for the PM review
# --------------------------------------------------------------------------- #
def _fmt(x: Any, kind: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if kind == "rate":
        return f"{100 * x:.2f}%"
    if kind == "rel":
        return f"{100 * x:+.1f}%"
    if kind == "pp":
        return f"{x:+.2f} pp"
    if kind == "USD":
        return f"${x:.4f}" if abs(x) < 1 else f"${x:,.2f}"
    if kind == "min":
        return f"{x:.1f} min"
    if kind == "p":
        return "<0.0001" if x < 1e-4 else f"{x:.3g}"
    if kind == "prob":
        return ">99%" if x > 0.99 else "<1%" if x < 0.01 else f"{100 * x:.0f}%"
    return str(x)


DISPLAY_COLUMNS = ["Metric", "Variant", "Members", "Value", "Relative lift (CI)", "Absolute lift (CI)",
                   "p-value (adj.)", "Chance to win", "Note"]


def metric_display(analysis: ExperimentAnalysis, metric: str | None = None) -> pd.DataFrame:
    """The metrics table (or one ``metric``'s rows) formatted as text for people (``DISPLAY_COLUMNS``).

    Relative lift: percent of the control's value, with its interval. Absolute lift:
    percentage points ("pp") for rates, USD or minutes otherwise (interval for rates only).
    """
    out = []
    rows = analysis.metrics if metric is None else analysis.metrics[analysis.metrics["metric"] == metric]
    for r in rows.itertuples():
        abs_kind = "pp" if r.abs_unit == "pp" else r.abs_unit
        if r.abs_unit == "pp":
            absolute = (f"{_fmt(r.abs_lift, 'pp')} ({_fmt(r.abs_ci_low, 'pp')} to {_fmt(r.abs_ci_high, 'pp')})"
                        if not math.isnan(r.abs_ci_low) else "–")
        else:
            absolute = "–" if math.isnan(r.abs_lift) else (
                f"{'+' if r.abs_lift >= 0 else '-'}{_fmt(abs(r.abs_lift), abs_kind)}")
        relative = "–" if math.isnan(r.relative_lift) else (
            f"{_fmt(r.relative_lift, 'rel')}" + ("" if math.isnan(r.rel_ci_low) else
                                                 f" ({_fmt(r.rel_ci_low, 'rel')} to {_fmt(r.rel_ci_high, 'rel')})"))
        out.append({
            "Metric": r.label,
            "Variant": r.variant + (" (control)" if r.is_control and r.variant.lower() != "control" else ""),
            "Members": f"{int(r.users):,}", "Value": _fmt(r.value, r.unit),
            "Relative lift (CI)": "" if r.is_control else relative,
            "Absolute lift (CI)": "" if r.is_control else absolute,
            "p-value (adj.)": "" if r.is_control else _fmt(r.p_value_adjusted, "p"),
            "Chance to win": "" if r.is_control else _fmt(r.chance_to_win, "prob"),
            "Note": "" if r.is_control else r.note,
        })
    return pd.DataFrame(out, columns=DISPLAY_COLUMNS)


COUNTRY_DISPLAY_COLUMNS = ["Country", "Variant", "Members", "Conversions", "Conversion rate",
                           "Relative lift (CI)", "Absolute lift (CI)"]


def country_display(breakdown: pd.DataFrame) -> pd.DataFrame:
    """``country_breakdown`` formatted as text for people (``COUNTRY_DISPLAY_COLUMNS``)."""
    out = []
    for r in breakdown.itertuples():
        control = bool(r.is_control)
        relative = "" if control or math.isnan(r.relative_lift) else (
            _fmt(r.relative_lift, "rel") + ("" if math.isnan(r.rel_ci_low) else
                                            f" ({_fmt(r.rel_ci_low, 'rel')} to {_fmt(r.rel_ci_high, 'rel')})"))
        absolute = "" if control or math.isnan(r.abs_lift) else (
            f"{_fmt(r.abs_lift, 'pp')} ({_fmt(r.abs_ci_low, 'pp')} to {_fmt(r.abs_ci_high, 'pp')})")
        label = r.variant + (" (control)" if control and r.variant.lower() != "control" else "")
        out.append({
            "Country": r.country_name, "Variant": label, "Members": f"{int(r.users):,}",
            "Conversions": f"{int(r.conversions):,}", "Conversion rate": _fmt(r.conversion_rate, "rate"),
            "Relative lift (CI)": relative, "Absolute lift (CI)": absolute,
        })
    return pd.DataFrame(out, columns=COUNTRY_DISPLAY_COLUMNS)


INTERVAL_COLUMNS = ["metric", "label", "variant", "role", "relative_lift", "rel_ci_low", "rel_ci_high",
                    "higher_is_better", "direction"]


def lift_intervals(analysis: ExperimentAnalysis, roles: Sequence[str] = ("primary", "guardrail")) -> pd.DataFrame:
    """Treatment rows with a relative interval, for the interval plot (``INTERVAL_COLUMNS``, fractions)."""
    m = analysis.metrics
    if m.empty:
        return pd.DataFrame(columns=INTERVAL_COLUMNS)
    keep = (~m["is_control"].astype(bool)) & m["role"].isin(list(roles)) & m["rel_ci_low"].notna()
    return m.loc[keep, INTERVAL_COLUMNS].reset_index(drop=True)


def summary_markdown(analysis: ExperimentAnalysis) -> str:
    """A Markdown report of the analysis for the PM review (verdict, checks, metric table, method)."""
    a = analysis
    period = "all time" if a.start is None and a.end is None else f"{a.start or '…'} to {a.end or '…'}"
    window = "the warehouse default window" if a.window_minutes is None else f"{a.window_minutes:g} minutes"
    lines = [f"# Experiment `{a.experiment_id}`", "",
             f"**Verdict: {a.verdict.decision}.** {a.verdict.sentence}", "",
             f"- Period: {period}; conversion counted within {window}.",
             (f"- Arms: {', '.join(f'{v} ({u:,} members)' for v, u in zip(a.variants['variant'], a.variants['users']))}; "
             f"control: {a.control}."),
             f"- Intervals: {a.level}, " + ("sequential (always valid, safe to look every day)." if a.sequential
                                            else "fixed horizon (read once at the planned end).")]
    if a.srm is not None:
        lines.append(f"- {a.srm.message} ({a.weights_source}).")
    if a.power is not None:
        p = a.power
        if p.days_more is None:
            plan = "not enough data to estimate how long the experiment needs"
        elif p.days_more == 0:
            plan = f"enough members to detect a {100 * p.mde_relative:.3g}% lift"
        else:
            plan = f"about {p.days_more} more days to detect a {100 * p.mde_relative:.3g}% lift"
        lines.append(f"- Power: {plan} (needs {p.required_users_per_arm or '–'} members per arm, has "
                     f"{p.users_per_arm:,} after {p.days_so_far} days).")
    for note in a.notes:
        lines.append(f"- {note}")
    if not a.guardrails.empty:
        lines += ["", "## Guardrails", ""]
        for g in a.guardrails.itertuples():
            state = "HURT" if g.hurt else ("improved" if g.direction == "better" else "no clear change")
            lines.append(f"- {g.guardrail} ({g.variant}): {g.effect} - {state}")
    if not a.metrics.empty:
        display = metric_display(a)
        lines += ["", "## Metrics", "",
                  ("Relative lift is the change as a percentage of the control; absolute lift of a rate is in "
                  "percentage points (pp)."), "",
                  "| " + " | ".join(display.columns[:-1]) + " |", "|" + "---|" * (len(display.columns) - 1)]
        for _, row in display.drop(columns=["Note"]).iterrows():
            lines.append("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |")
    lines += ["", "## Chance to win", "", CHANCE_TO_WIN_EXPLAINED, ""]
    return "\n".join(lines)


def summary_csv(analysis: ExperimentAnalysis) -> str:
    """The metric table as CSV (raw numbers: rates and relative lifts as fractions, absolute lifts in pp),
    with the experiment id and the verdict on every row."""
    a = analysis
    df = a.metrics.copy()
    df.insert(0, "experiment_id", a.experiment_id)
    df["decision"] = a.verdict.decision
    df["verdict"] = a.verdict.sentence
    df["alpha"] = a.alpha
    df["sequential"] = a.sequential
    df["srm_p_value"] = None if a.srm is None else a.srm.p_value
    buf = io.StringIO()
    df.to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL)
    return buf.getvalue()


__all__ = [
    "COUNTRY_COLUMNS",
    "DEFAULT_MDE",
    "EXPERIMENT_COLUMNS",
    "METRICS",
    "METRIC_COLUMNS",
    "VARIANT_COLUMNS",
    "ExperimentAnalysis",
    "ExperimentData",
    "ExperimentPlan",
    "PowerPlan",
    "analyse_experiment",
    "analyse_frame",
    "analyse_from",
    "country_breakdown",
    "country_breakdown_from",
    "country_display",
    "experiment_data",
    "experiment_plan",
    "lift_intervals",
    "list_experiments",
    "list_from",
    "metric_display",
    "planned_weights",
    "summary_csv",
    "summary_markdown",
    "variant_metrics",
]
