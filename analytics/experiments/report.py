"""Experiments, the words and tables: verdict sentences, the metric and country tables for people,
the interval plot's rows, and the Markdown / CSV exports for the PM review. Reads an
``ExperimentAnalysis``; computes no statistic and runs no SQL.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from switchboard.analytics.experiments.model import ExperimentAnalysis, PowerPlan
from switchboard.analytics.experiments_stats import (
    CHANCE_TO_WIN_EXPLAINED,
    MetricResult,
    ProportionResult,
    Verdict,
)


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


def _one_arm_verdict(names: Sequence[str]) -> Verdict:
    """The verdict while fewer than two arms have members."""
    sentence = ("Keep running: no members exposed to this experiment yet." if not names else
                f"Keep running: only {names[0]} has members so far; nothing to compare yet.")
    return Verdict("keep running", sentence, ("one arm",))


def _notes(arms: pd.DataFrame, treatments: Sequence[str], alpha: float) -> tuple[str, ...]:
    """Sentences the page and the summary add under the verdict (switched members, several treatments)."""
    notes: list[str] = []
    switched = int(arms["switched_users"].sum()) if "switched_users" in arms else 0
    if switched:
        notes.append(f"{switched:,} members were exposed to more than one variant; each is counted in the variant "
                     "of their first exposure.")
    if len(treatments) > 1:
        notes.append(f"{len(treatments)} treatments: p-values are Holm-adjusted and intervals are at "
                     f"{100 * (1 - alpha / len(treatments)):.4g}% so the family stays at {100 * (1 - alpha):.4g}%.")
    return tuple(notes)


def _effect_text(result: MetricResult) -> str:
    level = f"{100 * (1 - result.alpha):.4g}%"
    if result.relative_lift is not None and result.ci_low is not None and result.ci_high is not None:
        return (f"{100 * result.relative_lift:+.1f}% ({level} CI {100 * result.ci_low:+.1f}% to "
                f"{100 * result.ci_high:+.1f}%)")
    if isinstance(result, ProportionResult):
        return f"{result.abs_lift:+.1f} pp ({level} CI {result.abs_ci_low:+.1f} to {result.abs_ci_high:+.1f} pp)"
    return "not measurable yet"


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


