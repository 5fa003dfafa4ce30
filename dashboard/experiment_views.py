"""The Experiments page's second-round sections (issue 19): the decision card, the Bayesian readout, CUPED,
"differs by country" with its map, and power from history. Each takes an ``analytics.experiments.Readout``
and draws it; no numbers are computed here beyond formatting.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import pycountry
import streamlit as st

from switchboard.analytics import experiments as ex
from switchboard.analytics.experiments_stats import DECISION_RULES, RISK_EXPLAINED, ShipDecision
from switchboard.dashboard import components as ui

OUTCOME_STYLE = {
    "Ship": (st.success, ":material/rocket_launch:"),
    "Discuss": (st.warning, ":material/forum:"),
    "Don't ship": (st.error, ":material/block:"),
}
WHY_FREQUENTIST = (
    "Frequentist (the default) reads confidence intervals: they keep the false-positive rate at alpha, also "
    "when you look every day (sequential) and across variants, which is what a ship decision needs. "
    "Bayesian shows the chance to win and the risk (expected loss) of each choice, as GrowthBook does; the "
    "decision then reads the credible interval."
)


def _pct(x: Any, digits: int = 1, signed: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:+.{digits}f}%" if signed else f"{100 * x:.{digits}f}%"


def decision_card(r: ex.Readout) -> None:
    """Ship / Discuss / Don't ship first, with the reason and the days still to run."""
    d = r.decision
    if d is None:
        st.info("No decision yet: the experiment needs a control and a treatment with members.",
                icon=":material/hourglass_top:")
        return
    show, icon = OUTCOME_STYLE[d.outcome]
    if d.outcome == "Don't ship" and not d.final:
        show, icon = st.info, ":material/hourglass_top:"
    title = "Don't ship yet" if d.outcome == "Don't ship" and not d.final else d.outcome
    show(f"**{title}** · {d.reason}\n\n{_days_text(d)}", icon=icon)
    others = {t: x for t, x in r.decisions.items() if t != r.featured}
    for t, x in others.items():
        st.caption(f"{t} vs {r.control}: **{x.outcome}** · {x.reason}")
    with st.expander("How the decision is made (the rules, first match wins)", expanded=False):
        st.markdown("\n".join(f"{i}. {rule}" for i, rule in enumerate(DECISION_RULES, 1)))
        st.caption(f"This card: rule {d.rule}. Primary metric: conversion"
                   f"{' (CUPED-adjusted)' if r.cuped_used else ''}"
                   f"{', Bayesian credible interval' if r.method == 'bayesian' else ''}. Guardrails: "
                   + ", ".join(sorted({g for gs in r.guardrails.values() for g in gs})) + ". Minimum "
                   f"{r.min_days:g} days.")
        for note in r.guardrail_notes:
            st.caption(note)


def _days_text(d: ShipDecision) -> str:
    if d.final:
        return "Days still to run: **0** (more data would not change this)."
    if d.days_needed is None:
        return "Days still to run: **not known yet** (too little traffic to estimate)."
    return f"Days still to run: **about {d.days_needed}**."


def bayesian_section(r: ex.Readout) -> None:
    """Chance to win and the risk of each choice, per treatment."""
    if not r.bayesian:
        st.caption("No Bayesian readout: an arm has no members or no conversions yet.")
        return
    for t, b in r.bayesian.items():
        cols = st.columns(4)
        with cols[0]:
            ui.metric_card(f"Chance {t} beats {r.control}", _pct(b.chance_to_win, 0, signed=False),
                           help="Posterior probability that the treatment's conversion is higher.")
        with cols[1]:
            ui.metric_card("Expected lift", _pct(b.expected),
                           help=f"Posterior mean; {100 * (1 - b.alpha):.4g}% credible interval "
                                f"{_pct(b.ci_low)} to {_pct(b.ci_high)}.")
        with cols[2]:
            ui.metric_card(f"Risk of shipping {t}", _pct(b.risk_treatment, 2, signed=False),
                           help="Expected relative loss of conversion if you ship it and it is in fact worse.")
        with cols[3]:
            ui.metric_card(f"Risk of keeping {r.control}", _pct(b.risk_control, 2, signed=False),
                           help="Expected relative gain forgone if you keep the control and the treatment is better.")
    with st.expander("What does “risk” mean?", expanded=False):
        st.write(RISK_EXPLAINED)


def cuped_section(r: ex.Readout) -> None:
    """The variance reduction achieved and the adjusted lift beside the unadjusted one."""
    st.caption(r.cuped_note)
    if not r.cuped:
        return
    rows = [{
        "Variant": t,
        "Lift (CUPED)": f"{_pct(c.relative_lift)} ({_pct(c.ci_low)} to {_pct(c.ci_high)})",
        "Lift (unadjusted)": f"{_pct(c.unadjusted_lift)} ({_pct(c.unadjusted_ci_low)} to {_pct(c.unadjusted_ci_high)})",
        "Variance reduction": _pct(c.variance_reduction, 1, signed=False),
        "Interval narrower by": _pct(1 - math.sqrt(max(0.0, 1 - (c.variance_reduction or 0.0))), 1, signed=False),
        "p (CUPED)": "-" if c.p_value is None else f"{c.p_value:.3g}",
    } for t, c in r.cuped.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="cuped_table")


def _iso3(iso2: str) -> str | None:
    country = pycountry.countries.get(alpha_2=str(iso2))
    return country.alpha_3 if country else None


def lift_map(lifts: pd.DataFrame, treatment: str) -> go.Figure:
    """Per-country relative lift of ``treatment``, diverging around 0 (green helps, red hurts)."""
    d = lifts[lifts["treatment"] == treatment].copy()
    d["country_iso3"] = d["country_iso2"].map(_iso3)
    d["lift_pct"] = 100 * d["relative_lift"]
    bound = max(1.0, float(d["lift_pct"].abs().max())) if len(d) else 1.0
    fig = px.choropleth(
        d.dropna(subset=["country_iso3"]), locations="country_iso3", locationmode="ISO-3", color="lift_pct",
        hover_name="country_name", color_continuous_scale="RdYlGn", range_color=(-bound, bound),
        hover_data={"country_iso3": False, "lift_pct": ":+.1f", "users": ":,", "direction": True},
        labels={"lift_pct": "Lift (%)", "users": "Members", "direction": "Corrected"},
    )
    fig.update_geos(showcountries=True, countrycolor="#999", showland=True, landcolor="#e8e8e8", showframe=False,
                    projection_type="natural earth", showcoastlines=False, lataxis_range=[-58, 85])
    fig.update_coloraxes(colorbar={"ticksuffix": "%", "title": ""})
    fig.update_layout(title={"text": f"Conversion lift of {treatment} by country", "x": 0}, height=430,
                      margin={"l": 0, "r": 0, "t": 50, "b": 0})
    return fig


def countries_section(r: ex.Readout) -> None:
    """The "differs by country" flag, the map of per-country lifts and the corrected table."""
    if not r.heterogeneity:
        st.caption("Too few countries with enough members in each arm to check whether the effect differs.")
        return
    for t, h in r.heterogeneity.items():
        if h.opposite:
            st.warning(f"**{t} differs by country: it helps in some and hurts in others.** {h.message}",
                       icon=":material/public:")
        elif h.differs:
            st.warning(f"**The effect of {t} differs by country.** {h.message}", icon=":material/public:")
        else:
            st.caption(h.message)
        ui.show(lift_map(r.country_lifts, t), key=f"lift_map_{t}")
    shown = r.country_lifts.assign(
        relative_lift=lambda d: d["relative_lift"].map(_pct),
        interval=lambda d: [f"{_pct(lo)} to {_pct(hi)}" for lo, hi in zip(d["ci_low"], d["ci_high"])],
    )[["treatment", "country_name", "users", "relative_lift", "interval", "p_value_adjusted", "direction"]]
    ui.table(shown, key="country_lifts", columns={
        "treatment": "Variant", "country_name": "Country", "users": ui.count_column("Members"),
        "relative_lift": "Lift", "interval": st.column_config.TextColumn(
            "Corrected interval", help="At the level the multiplicity correction implies (see the families)."),
        "p_value_adjusted": st.column_config.NumberColumn("Adjusted p", format="%.3g"),
        "direction": "Corrected verdict",
    })


def power_section(r: ex.Readout) -> None:
    """The MDE calculator's inputs, filled in from the warehouse, and the days still needed."""
    p = r.power
    if p is None or p.baseline is None:
        st.caption("No power estimate: the control has no members yet.")
        return
    cols = st.columns(3)
    with cols[0]:
        ui.metric_card("Baseline conversion", _pct(p.baseline, 1, signed=False),
                       help="The control's conversion rate in this period and segment.")
    with cols[1]:
        reduced = f", after CUPED's {_pct(p.variance_reduction, 0, signed=False)} reduction" if p.variance_reduction \
            else ""
        ui.metric_card("Variance per member", "-" if p.variance is None else f"{p.variance:.4f}",
                       help=f"p(1 - p) of the baseline{reduced}.")
    with cols[2]:
        ui.metric_card("Members per arm per day", "-" if p.daily_users_per_arm is None
                       else f"{p.daily_users_per_arm:,.0f}", help=f"Average over the {p.days_so_far} days so far.")
    mde = f"{100 * p.mde:.3g}%"
    if p.days_more is None:
        st.caption(f"Not enough data yet to say how long it takes to detect a {mde} lift.")
    elif p.days_more == 0:
        st.caption(f"Enough data to detect a {mde} lift (or the decision is final).")
    else:
        st.caption(f"About {p.days_more} more days to detect a {mde} lift at this traffic.")
