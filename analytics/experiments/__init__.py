"""A/B experiments: ``data`` (SQL aggregates, and the pre-period / opt-out sums), ``analysis`` (statistics and
verdicts), ``readout`` (issue 19: the Ship / Discuss / Don't ship card with Bayesian, CUPED, differences by
country and power from history), ``report`` (words, tables, CSV/Markdown) and ``plan`` (the recorded plan,
from files the caller names).

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

Planned weights come from the caller (``weights``), else from the experiment's recorded plan that
the caller's ``plans`` lookup finds (``PlanFiles(plan_files(folder))`` reads ``ground_truth.json``,
written by the sandbox beside the send logs, or ``experiments.json``), else an equal split, and
``ExperimentAnalysis.weights_source`` says which. The analysis reads no settings and no files: the
dashboard passes its ``min_sample_size`` setting and its plan files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import duckdb
import pandas as pd

from switchboard.analytics import _sql
from switchboard.analytics.experiments import analysis, data, model, readout, report  # noqa: F401 (submodules)
from switchboard.analytics.experiments.analysis import (
    _arms,
    _country_rows,
    _experiment_list,
    analyse_frame,
    analyse_from,
    country_breakdown_from,
    list_from,
)
from switchboard.analytics.experiments.data import (
    DEFAULT_PRE_DAYS,
    ExperimentData,
    OptOuts,
    PrePeriodData,
    _aggregates,
    _last_data_day,
    experiment_data,
    has_responses,
    opt_out_data,
    preperiod_data,
    preperiod_from,
)
from switchboard.analytics.experiments.model import (
    COUNTRY_COLUMNS,
    DEFAULT_MDE,
    DEFAULT_MIN_SAMPLE_SIZE,
    EXPERIMENT_COLUMNS,
    GUARDRAIL_COLUMNS,
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
from switchboard.analytics.experiments.plan import PlanFiles, experiment_plan, plan_files, planned_weights
from switchboard.analytics.experiments.readout import (
    COUNTRY_LIFT_COLUMNS,
    DEFAULT_MIN_DAYS,
    DEFAULT_MIN_SEGMENT_USERS,
    PowerHistory,
    Readout,
    cuped_stats,
    experiment_readout,
    guardrail_table,
)
from switchboard.analytics.experiments.report import (
    COUNTRY_DISPLAY_COLUMNS,
    DISPLAY_COLUMNS,
    INTERVAL_COLUMNS,
    country_display,
    lift_intervals,
    metric_display,
    summary_csv,
    summary_markdown,
)
from switchboard.analytics.filters import Filters


# --------------------------------------------------------------------------- #
# One call from a connection: the data half, then the analysis
# --------------------------------------------------------------------------- #
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

    The control is ``control`` when given, else the first variant of the recorded ``plan``
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
    min_sample_size: int = DEFAULT_MIN_SAMPLE_SIZE,
    control: str | None = None,
    plans: PlanLookup | None = None,
) -> ExperimentAnalysis:
    """The full read of one experiment: metric table, SRM, guardrails, power and the verdict.

    Primary metric: conversion within the window. Guardrails: delivery rate and cost
    per member (hurt when the interval lies entirely on the bad side). Secondary:
    voice-fallback rate, cost per conversion, time to convert. ``sequential=True``
    gives always-valid intervals (safe to look every day). ``weights``: the planned
    split per variant (mapping, or a sequence in control-first order); when None,
    ``planned_weights`` looks it up or assumes an equal split. ``mde_relative``: the
    relative conversion lift the power plan targets. ``min_sample_size``: below this many
    members in any arm the verdict is "too early" (the dashboard passes the setting).
    ``plans``: where the experiment's recorded plan is looked up (``PlanFiles(plan_files(dir))``);
    none: an equal split and the control by name.
    """
    plan = (plans or no_plans)(experiment_id)
    arms = variant_metrics(con, experiment_id, start=start, end=end, filters=filters,
                           window_minutes=window_minutes, control=control, plan=plan)
    return analyse_frame(arms, experiment_id, alpha=alpha, sequential=sequential, weights=weights,
                         mde_relative=mde_relative, min_sample_size=min_sample_size,
                         window_minutes=window_minutes, start=start, end=end, plan=plan)


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
    plans: PlanLookup | None = None,
    min_sample_size: int = DEFAULT_MIN_SAMPLE_SIZE,
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
                            sequential=sequential, alpha=alpha, mde_relative=mde_relative, plans=plans,
                            min_sample_size=min_sample_size)


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
    plans: PlanLookup | None = None,
) -> pd.DataFrame:
    """Conversion per variant in the top ``top_n`` countries (by members) plus "Other" (``COUNTRY_COLUMNS``).

    Exploratory: many segments give false positives, so lifts are per segment, not
    corrected for multiplicity, and ``exploratory`` is True on every row; the verdict
    never reads them. Country is the one of the member's first exposure.
    """
    df = _aggregates(con, [experiment_id], start=start, end=end, filters=filters, window_minutes=window_minutes,
                     segment="country")
    return _country_rows(df, experiment_id, top_n, alpha=alpha, sequential=sequential, control=control,
                         plan=(plans or no_plans)(experiment_id))


__all__ = [
    "COUNTRY_COLUMNS",
    "COUNTRY_DISPLAY_COLUMNS",
    "COUNTRY_LIFT_COLUMNS",
    "DEFAULT_MDE",
    "DEFAULT_MIN_DAYS",
    "DEFAULT_MIN_SAMPLE_SIZE",
    "DEFAULT_MIN_SEGMENT_USERS",
    "DEFAULT_PRE_DAYS",
    "DISPLAY_COLUMNS",
    "EXPERIMENT_COLUMNS",
    "GUARDRAIL_COLUMNS",
    "INTERVAL_COLUMNS",
    "METRICS",
    "METRIC_COLUMNS",
    "NO_PLAN",
    "VARIANT_COLUMNS",
    "ExperimentAnalysis",
    "ExperimentData",
    "ExperimentPlan",
    "MetricSpec",
    "OptOuts",
    "PlanFiles",
    "PlanLookup",
    "PowerHistory",
    "PowerPlan",
    "PrePeriodData",
    "Readout",
    "analyse_experiment",
    "analyse_frame",
    "analyse_from",
    "country_breakdown",
    "country_breakdown_from",
    "country_display",
    "cuped_stats",
    "experiment_data",
    "experiment_plan",
    "experiment_readout",
    "guardrail_table",
    "has_responses",
    "lift_intervals",
    "list_experiments",
    "list_from",
    "metric_display",
    "no_plans",
    "opt_out_data",
    "plan_files",
    "planned_weights",
    "preperiod_data",
    "preperiod_from",
    "summary_csv",
    "summary_markdown",
    "variant_metrics",
]
