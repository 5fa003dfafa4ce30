"""Voice & fallback: how calls end and how often SMS falls back to voice and is rescued by it."""

from __future__ import annotations

import streamlit as st

from switchboard.analytics import fallback, voice
from switchboard.dashboard import components as ui
from switchboard.dashboard import data


def calls_section(view: ui.View) -> None:
    """Call cards, outcomes and answer rate by country."""
    calls = data.run(voice.voice_summary, **view.period).iloc[0]
    if calls["calls"] == 0:
        ui.nothing_in_period(view, "calls")
        return
    c = ui.card_slots(5)
    with c[0]:
        ui.metric_card("Calls", ui.compact(calls["calls"]),
                       help=f"Outbound calls started in the period. Exactly {ui.count(calls['calls'])}.")
    with c[1]:
        ui.metric_card("Answer rate", ui.pct(calls["answer_rate"]),
                       help="Completed / (completed + busy + no answer + failed + canceled).")
    with c[2]:
        ui.metric_card("Median duration", ui.seconds(calls["duration_p50_s"]),
                       help=f"Of completed calls; 90th percentile {ui.seconds(calls['duration_p90_s'])}.")
    with c[3]:
        ui.metric_card("Machine answers", ui.pct(calls["machine_share"]),
                       help="Share of completed calls answered by voicemail or fax (needs answering-machine detection).")
    with c[4]:
        ui.metric_card("Cost per answer", ui.usd_compact(calls["cost_per_answered"]),
                       help=f"Total voice cost {ui.usd(calls['cost_usd'])}.")
    left, right = st.columns(2)
    outcomes = ["completed", "busy", "no_answer", "failed", "canceled", "in_progress"]
    labels = ["Completed", "Busy", "No answer", "Failed", "Canceled", "In progress"]
    with left:
        ui.show(ui.donut(labels, [int(calls[o]) for o in outcomes], title="Call outcomes (calls)",
                         colors=["#2ca02c", "#ff7f0e", "#ffbb78", "#d62728", "#7f7f7f", "#aec7e8"]), key="outcomes")
    with right:
        per_country = data.run(voice.voice_by_country, **view.period).head(15)
        ui.show(ui.bar(per_country, x="country_name", y="answer_rate", horizontal=True, percent=True,
                       title="Answer rate by country (%), top 15 by calls", y_title="Answer rate",
                       hover={"calls": ",", "duration_p50_s": ".0f"}), key="answer_by_country")


def fallback_section(view: ui.View) -> None:
    """SMS → voice fallback: cards and the per-country table."""
    chains = data.run(fallback.fallback_summary, **view.period).iloc[0]
    if chains["sms_attempts"] == 0:
        ui.nothing_in_period(view, "SMS attempts in the send log")
        return
    c = ui.card_slots(5)
    with c[0]:
        ui.metric_card("SMS attempts", ui.compact(chains["sms_attempts"]),
                       help="First SMS attempts in the send log (fallbacks themselves excluded). "
                            f"Exactly {ui.count(chains['sms_attempts'])}.")
    with c[1]:
        ui.metric_card("Fallback rate", ui.pct(chains["fallback_rate"]),
                       help="Share of SMS attempts that fell back to a voice call.")
    with c[2]:
        ui.metric_card("Fallback success", ui.pct(chains["fallback_success_rate"]),
                       help="Fallbacks that were delivered (the call was answered).")
    with c[3]:
        ui.metric_card("Members rescued", ui.compact(chains["members_rescued"]),
                       help=f"Exactly {ui.count(chains['members_rescued'])}. {ui.count(chains['rescued'])} attempts "
                            "reached only thanks to the fallback.")
    with c[4]:
        ui.metric_card("Reached overall", ui.pct(chains["reached_rate"]),
                       help="(SMS delivered + rescued by the fallback) / SMS attempts. A rescued member waited "
                            f"{ui.seconds(chains['rescue_seconds_p50'])} (median) from the first SMS to the call.")
    by_country = data.run(fallback.fallback_by_country, **view.period)
    by_country = by_country[by_country["fell_back"] > 0]
    if not by_country.empty:
        ui.table(by_country, key="fallback_by_country", columns={
            "country_name": "Country",
            "sms_attempts": ui.count_column("SMS attempts"),
            "fallback_rate": ui.percent_column("Fallback rate"),
            "fallback_success_rate": ui.percent_column("Fallback success"),
            "rescued": ui.count_column("Rescued"),
            "reached_rate": ui.percent_column("Reached overall"),
            "rescue_seconds_p50": st.column_config.NumberColumn("Median rescue time", format="%.0f s"),
        })


view = ui.page_header("Voice & fallback")
st.caption(ui.period_caption(view) + " Calls include voice fallbacks of failed SMS.")
st.subheader("Calls")
calls_section(view)
st.subheader("SMS → voice fallback")
fallback_section(view)
