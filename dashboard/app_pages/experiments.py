"""Experiments: what each A/B test says, in words a product manager can act on.

Everything shown comes from ``analytics.experiments`` (SQL aggregates per variant,
statistics from ``analytics.experiments_stats``, the decision card and its evidence from
``analytics.experiments.readout``); this page and ``dashboard.experiment_views`` only lay it out.
Order: the decision card first, then the Bayesian readout, CUPED, metrics, guardrails, countries
("differs by country" and its map), power from history, exports.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from switchboard.analytics import experiments as ex
from switchboard.analytics.experiments_stats import CHANCE_TO_WIN_EXPLAINED
from switchboard.dashboard import components as ui
from switchboard.dashboard import data
from switchboard.dashboard import experiment_views as views


def interval_plot(intervals, level: str) -> go.Figure:
    """Relative lift of each treatment with its interval, against 0 (no change).

    Green: interval entirely on the good side; red: entirely on the bad side; grey: unclear.
    """
    colours = {"better": "#2ca02c", "worse": "#d62728", "unclear": "#7f7f7f"}
    d = intervals
    fig = go.Figure(go.Scatter(
        x=100 * d["relative_lift"], y=d["label"] + " · " + d["variant"], mode="markers", showlegend=False,
        marker={"size": 11, "color": [colours.get(x, "#1f77b4") for x in d["direction"]]},
        error_x={"type": "data", "symmetric": False, "array": 100 * (d["rel_ci_high"] - d["relative_lift"]),
                 "arrayminus": 100 * (d["relative_lift"] - d["rel_ci_low"]), "thickness": 2, "width": 6},
        customdata=100 * d[["rel_ci_low", "rel_ci_high"]].to_numpy(),
        hovertemplate="%{y}<br>Lift %{x:+.1f}%<br>" + level + " CI %{customdata[0]:+.1f}% to "
                      "%{customdata[1]:+.1f}%<extra></extra>",
    ))
    fig.add_vline(x=0, line_dash="dash", line_color="#444")
    fig.update_xaxes(title="Relative lift vs control (%)", ticksuffix="%", zeroline=False)
    fig.update_yaxes(title=None, autorange="reversed", type="category")
    fig.update_layout(title={"text": f"Relative lift with {level} intervals (vs 0 = no change)", "x": 0},
                      height=140 + 50 * len(intervals), margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      )
    return fig


view = ui.page_header("Experiments")
settings = data.settings()
alpha = settings.alpha
st.caption(
    ui.period_caption(view) + " Members are assigned by their first send in the experiment. The sidebar's "
    "template and channel filters are not applied here: they are what experiments vary."
)

left, mid, right = st.columns(3)
with left:
    sequential = st.toggle(
        "I look every day (sequential)", value=False, key="exp_sequential",
        help="Always-valid intervals: safe to check results daily without inflating false positives. "
             "They are wider than the fixed-horizon ones, which are only valid when read once at the planned end.",
    )
with mid:
    window = st.number_input(
        "Conversion window (minutes)", min_value=1, max_value=7 * 24 * 60,
        value=int(settings.conversion_window_minutes), step=5, key="exp_window",
        help="A member converts when the conversion happens within this many minutes of their first send.",
    )
with right:
    mde_pct = st.number_input(
        "Lift to detect (%)", min_value=0.5, max_value=100.0, value=100 * ex.DEFAULT_MDE, step=0.5,
        key="exp_mde", help="The smallest relative conversion lift worth detecting; sets the days-needed estimate.",
    )
mde = float(mde_pct) / 100.0
left, mid, right = st.columns(3)
with left:
    method = st.segmented_control(
        "Readout", ["Frequentist", "Bayesian"], default="Frequentist", key="exp_method", help=views.WHY_FREQUENTIST,
    ) or "Frequentist"
with mid:
    cuped = st.toggle(
        "CUPED (use each member's pre-period)", value=True, key="exp_cuped",
        help=f"Adjusts each member's result by their conversions in the {settings.experiment_pre_days} days before "
             "their first exposure (setting experiment_pre_days): same expected lift, narrower intervals, so tests "
             "finish sooner. On by default; it has no effect when no member has a pre-period.",
    )
with right:
    correction_label = st.segmented_control(
        "Multiple comparisons", ["Holm", "Benjamini-Hochberg"], default="Holm", key="exp_correction",
        help="Holm keeps the chance of any false positive at alpha (strict; few variants). Benjamini-Hochberg keeps "
             "the share of false positives among the findings at alpha (less strict; many countries).",
    ) or "Holm"
correction = "bh" if correction_label == "Benjamini-Hochberg" else "holm"
# The experiments' recorded plans (control first, planned split): ground_truth.json / experiments.json
# beside the send logs or in the data folder (the sandbox writes one). The analysis reads no file itself.
plans = ex.PlanFiles(ex.plan_files(settings.send_logs_dir, settings.data_dir, settings.data_dir / "sandbox"))
stats = {"sequential": sequential, "alpha": alpha, "mde_relative": mde, "plans": plans}

# One query for the whole page (cached per period, filters and window): the list, the chosen
# experiment's analysis and its countries are derived from it (analytics.experiments.ExperimentData).
page_data: ex.ExperimentData = data.run(ex.experiment_data, **view.period, window_minutes=float(window),
                                        pre_days=int(settings.experiment_pre_days))
experiments = ex.list_from(page_data, **stats, min_sample_size=settings.min_sample_size)
if experiments.empty:
    st.info(
        f"No experiments between {view.start:%d %b %Y} and {view.end:%d %b %Y} with these filters. Experiments "
        "come from the send logs' `experiment_id` and `variant` columns: run `make demo` (the sandbox world has "
        "two experiments) or `switchboard ingest` with send logs that carry them, or widen the dates.",
        icon=":material/science:",
    )
    st.stop()

st.subheader("All experiments")
ui.table(experiments, key="experiment_list", columns={
    "experiment_id": "Experiment",
    "variants": st.column_config.TextColumn("Variants", help="Control first."),
    "users": ui.count_column("Members"),
    "first_day": st.column_config.DateColumn("First day"),
    "last_day": st.column_config.DateColumn("Last day"),
    "days_running": ui.count_column("Days"),
    "status": "Status",
    "decision": st.column_config.TextColumn(
        "Decision so far", help="A quick read from conversion, delivery and cost intervals. The decision card of "
                                "the chosen experiment also reads CUPED, opt-outs, countries and the minimum days."),
})

ids = experiments["experiment_id"].tolist()
# ?experiment=<id> (the sender's "Variants of experiment" link) selects it; an id not in this list
# would silently fall back to the first experiment, so say so.
requested = st.query_params.get("experiment")
if requested and requested not in ids:
    st.warning(f"Experiment {ui.md_escape(ui.shorten(requested, 60))} has no sends between {view.start:%d %b %Y} "
               f"and {view.end:%d %b %Y} with these filters (a campaign appears after `switchboard ingest`); "
               "showing another one.", icon=":material/search_off:")
chosen = st.selectbox("Experiment", ids, key="experiment", bind="query-params")
if chosen is None:
    st.stop()
analysis: ex.ExperimentAnalysis = ex.analyse_from(page_data, chosen, **stats,
                                                   min_sample_size=settings.min_sample_size, correction=correction)
# The pre-period covariate and opt-outs of the chosen experiment: the CUPED sums came with the page's query
# when the warehouse carries this pre-period (issue 19), so only the few opt-outs are looked up; else one more
# query counts them (both cached like the first).
pre = ex.preperiod_from(page_data, chosen, data.run(ex.opt_out_data, chosen, **view.period)) \
    if page_data.cuped is not None else None
if pre is None:
    pre = data.run(ex.preperiod_data, chosen, **view.period, window_minutes=float(window),
                   pre_days=int(settings.experiment_pre_days))
read: ex.Readout = ex.experiment_readout(
    analysis, page_data, pre, method=method.lower(), cuped=cuped, correction=correction,
    min_days=settings.experiment_min_days, min_segment_users=settings.min_sample_size)
level = analysis.level
row = experiments.set_index("experiment_id").loc[chosen]
st.caption(f"`{chosen}` - {row['status']}: {row['first_day']:%d %b %Y} to {row['last_day']:%d %b %Y} "
           f"({row['days_running']} days in this period), {row['users']:,} members; control: {analysis.control}.")

# --- the decision card first -------------------------------------------------------------------
views.decision_card(read)
if analysis.srm is not None and not analysis.srm.ok:
    st.error(f"**Sample ratio mismatch - this blocks shipping.** {analysis.srm.message}", icon=":material/warning:")
elif analysis.srm is not None:
    st.caption(f"{analysis.srm.message} Planned split: {analysis.weights_source}.")
for note in analysis.notes:
    st.caption(note)
st.caption(
    f"Intervals: {level}, " + ("sequential (always valid): you can look every day."
                               if sequential else "fixed horizon: valid when read once, at the planned end. "
                               "Turn on 'I look every day' if you check daily.")
)

if analysis.metrics.empty:
    st.stop()

# --- Bayesian readout and CUPED ----------------------------------------------------------------
if read.method == "bayesian":
    st.subheader("Bayesian readout: chance to win and risk")
    views.bayesian_section(read)
st.subheader("Variance reduction (CUPED)")
views.cuped_section(read)

# --- metrics -----------------------------------------------------------------------------------
st.subheader("Results per metric")
st.caption(
    "**Relative lift** is the change as a percentage of the control's value (+10% on a 50% rate means 55%). "
    "**Absolute lift** of a rate is in **percentage points** (pp): 50% → 55% is +5 pp. "
    f"p-values are adjusted for the number of variants ({correction_label})."
)
for family in read.families[:1]:
    st.caption(f"Family of tests: {family}")
intervals = ex.lift_intervals(analysis)
if not intervals.empty:
    ui.show(interval_plot(intervals, level), key="lift_intervals")
for spec in ex.METRICS:
    rows = ex.metric_display(analysis, spec.key)
    if rows.empty:
        continue
    role = {"primary": "primary metric", "guardrail": "guardrail", "secondary": "secondary"}[spec.role]
    st.markdown(f"**{spec.label}** ({role}{', lower is better' if not spec.higher_is_better else ''})")
    st.dataframe(rows.drop(columns=["Metric"]), hide_index=True, key=f"metric_{spec.key}")

with st.expander("What does “chance to win” mean?", expanded=False):
    st.write(CHANCE_TO_WIN_EXPLAINED)

# --- guardrails --------------------------------------------------------------------------------
st.subheader("Guardrails")
guardrails = ex.guardrail_table(read)
if guardrails.empty:
    st.caption("No guardrail could be measured yet.")
else:
    st.caption("A guardrail is hurt when its whole interval lies on the bad side; that blocks shipping.")
    ui.table(guardrails, key="guardrails", columns={
        "guardrail": "Guardrail", "variant": "Variant", "effect": f"Relative change ({level} CI)",
        "direction": "Direction", "hurt": st.column_config.CheckboxColumn("Hurt"),
    })
for note in read.guardrail_notes:
    st.caption(note)

# --- differs by country (corrected) ------------------------------------------------------------
st.subheader("Does the effect differ by country?")
for family in read.families[1:]:
    st.caption(f"Family of tests: {family}")
views.countries_section(read)

# --- power from history ------------------------------------------------------------------------
st.subheader("Power from history")
views.power_section(read)
if analysis.power is not None and analysis.power.detectable_now is not None:
    st.caption(f"With the members so far the test can detect a conversion lift of about "
               f"{100 * analysis.power.detectable_now:.3g}% (fixed horizon, without CUPED).")

# --- country breakdown (exploratory) -----------------------------------------------------------
st.subheader("By country (exploratory)")
st.caption(
    "Exploratory: with many countries some will look different by chance, so these intervals are not corrected "
    "and the verdict never uses them. Use them to plan a follow-up experiment, not to ship."
)
countries = ex.country_breakdown_from(page_data, chosen, 5, alpha=alpha, sequential=sequential, plans=plans)
if countries.empty:
    st.caption("No members with a known country.")
else:
    shown = ex.country_display(countries)
    st.dataframe(shown, hide_index=True, key="country_breakdown", height=38 + 35 * len(shown))

# --- exports -----------------------------------------------------------------------------------
st.subheader("Export for the review")
c1, c2 = st.columns(2)
with c1:
    st.download_button("Download summary (Markdown)", ex.summary_markdown(analysis),
                       file_name=f"{chosen}-summary.md", mime="text/markdown", key="download_md")
with c2:
    st.download_button("Download metrics (CSV)", ex.summary_csv(analysis), file_name=f"{chosen}-metrics.csv",
                       mime="text/csv", key="download_csv")
