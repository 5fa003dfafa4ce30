"""The shapes shared by the experiments modules: column lists, metric specs, the plan, the analysis.

No SQL, no statistics, no I/O: ``data``, ``analysis``, ``report`` and ``plan`` all import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from switchboard.analytics.experiments_stats import MetricResult, SrmResult, Verdict

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
_INT_COLUMNS = {"users", "delivery_known_users", "delivered_users", "conversions", "fallback_users",
                "attempts", "switched_users"}
# Below this many members in any arm the verdict is "too early". The same default as the setting
# ``min_sample_size`` (core.settings); callers that honour the setting pass it (the dashboard does).
DEFAULT_MIN_SAMPLE_SIZE = 100


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


@dataclass(frozen=True)
class ExperimentPlan:
    """What the sandbox / platform recorded about an experiment beside the send logs.

    ``variants``: the planned variants in order, control first (None if unknown);
    ``weights``: planned weight per variant (None if not recorded); ``source``: the file.
    """

    variants: tuple[str, ...] | None
    weights: Mapping[str, float] | None
    source: str | None


NO_PLAN = ExperimentPlan(None, None, None)
# Where an analysis finds an experiment's recorded plan: the caller's choice (analytics.experiments.plan
# reads one from files the caller names). The analysis itself reads no file and no setting.
PlanLookup = Callable[[str], ExperimentPlan]


def no_plans(experiment_id: str) -> ExperimentPlan:
    """The lookup used when the caller gives none: nothing recorded (equal split, control by name)."""
    return NO_PLAN
