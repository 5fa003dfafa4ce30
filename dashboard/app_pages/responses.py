"""Responses (issue 18): members' replies. Opt-out and HELP rates per template, variant, country,
purpose and campaign with 95 % intervals, the daily opt-out trend, and who is opted out now (masked)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from switchboard.analytics import responses
from switchboard.dashboard import components as ui
from switchboard.dashboard import data

GROUPINGS = {
    "Template": "template_id", "Variant (experiment)": "variant", "Country": "country_iso2",
    "Purpose": "purpose", "Campaign": "campaign_id",
}
RULES = (
    "A reply is classified by **Twilio's keyword rule**: the whole message, case, surrounding whitespace, "
    "punctuation and accents ignored. STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT opt out; "
    "START, YES, UNSTOP opt back in; HELP, INFO ask for help; plus localised keywords (BAJA, PARAR, SAIR, ARRET, "
    "STOPP, AYUDA, AIDE, HILFE…). \"Stop texting me\" is free text. It is **linked** to the member's last "
    "message from the number they texted, sent within 7 days before, that Twilio did not refuse. "
    "A rate is the share of delivered SMS that got such a reply."
)


def summary_cards(view: ui.View) -> None:
    counts = data.run(responses.response_summary, **view.period)
    total = int(counts["replies"].sum()) if len(counts) else 0
    by = counts.set_index("classification")["replies"] if len(counts) else pd.Series(dtype="int64")
    slots = ui.card_slots(5)
    for slot, (label, kind) in zip(slots, (("Replies", None), ("Opt-outs", "opt_out"), ("HELP", "help"),
                                           ("Opt-ins", "opt_in"), ("Free text", "other"))):
        with slot:
            value = total if kind is None else int(by.get(kind, 0))
            st.metric(label, ui.count(value), border=True,
                      help="Replies received in the period, whatever they answer." if kind is None else None)


def rates(view: ui.View) -> None:
    st.subheader("Opt-out and HELP rates")
    label = st.segmented_control("Per", list(GROUPINGS), default="Template", key="responses_by") or "Template"
    by = GROUPINGS[label]
    df = data.run(responses.response_rates, by=by, **view.period)
    if df.empty:
        ui.nothing_in_period(view, "delivered SMS")
        return
    shown = df[df["delivered"] > 0].assign(key=df["key"].fillna("(none)"))
    # Opt-out rates live near 0-5 %: plotted in percent points so the axis is not stretched to 100 %.
    chart = shown.head(20).assign(opt_out_pct=shown["opt_out_rate"] * 100)
    ui.show(ui.bar(chart, x="key", y="opt_out_pct", horizontal=True,
                   title=f"Opt-out rate per {label.lower()} (% of delivered SMS)",
                   y_title="Opt-out rate (%)", hover={"delivered": ",", "opt_outs": ",", "opt_out_ci_low": ".2%",
                                                      "opt_out_ci_high": ".2%"}), key="optout_bar")
    ui.table(shown, key="response_rates", columns={
        "key": label,
        "delivered": ui.count_column("Delivered SMS"),
        "opt_outs": ui.count_column("Opt-outs"),
        "opt_out_rate": ui.percent_column("Opt-out rate"),
        "opt_out_ci_low": ui.percent_column("95% low"),
        "opt_out_ci_high": ui.percent_column("95% high"),
        "helps": ui.count_column("HELP"),
        "help_rate": ui.percent_column("HELP rate"),
        "opt_ins": ui.count_column("Opt-ins"),
        "others": ui.count_column("Free text"),
    })


def trend(view: ui.View) -> None:
    df = data.run(responses.response_trend, **view.period)
    if df.empty:
        return
    ui.show(ui.lines(df, x="day", y="opt_out_rate", color="key", title="Opt-out rate per day, by send day",
                     y_title="Opt-out rate", percent=True), key="optout_trend")


def spikes(view: ui.View) -> None:
    """What changed: templates and countries whose opt-out rate rose in the last 7 days of the period."""
    from datetime import timedelta

    start = max(view.start, view.end - timedelta(days=6))
    found = [data.run(responses.opt_out_spikes, start=start, end=view.end, by=by, filters=view.filters)
             .assign(group=label) for label, by in (("Template", "template_id"), ("Country", "country_iso2"))]
    rows = [f for f in found if len(f)]
    if not rows:
        st.caption("No opt-out spike in the last 7 days against the 7 before (one-sided test, p < 0.01).")
        return
    for f in rows:
        for r in f.itertuples():
            st.warning(f"**{r.group} {r.key}**: opt-out rate {ui.pct(r.opt_out_rate, 2)} of {ui.count(r.delivered)} "
                       f"delivered SMS in the last 7 days, against {ui.pct(r.baseline_rate, 2)} the 7 days before "
                       f"({r.ratio:.1f}×, p = {r.p_value:.1g}).", icon=":material/trending_up:")


def opted_out(view: ui.View) -> None:
    st.subheader("Opted out now")
    total, df = data.run(responses.opted_out_members, limit=500, countries=view.filters.countries)
    st.caption(f"{ui.count(total)} member–number pairs: the sender skips them, and Twilio refuses them with 21610. "
               "Numbers are masked.")
    if total:
        ui.table(df, key="opted_out", height=300, columns={
            "member": "Member", "our_number": "Our number", "country_iso2": "Country", "user_id": "Member id",
            "since": st.column_config.DatetimeColumn("Since", format="YYYY-MM-DD HH:mm"),
            "evidence": "Evidence", "keyword": "Keyword",
        })


view = ui.page_header("Responses", "Members' replies: STOP, START, HELP and free text.")
if not data.run(responses.available):
    st.info("This warehouse has no replies yet: run `switchboard ingest` with this version to build them.")
    st.stop()
st.caption(RULES)
summary_cards(view)
spikes(view)
rates(view)
trend(view)
opted_out(view)
