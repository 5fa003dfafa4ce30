"""Templates: a live segment and encoding checker, and what each template costs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from switchboard.analytics import templates
from switchboard.dashboard import components as ui
from switchboard.dashboard import data


def checker() -> templates.SegmentInfo:
    """The live segment and encoding checker; returns what it found for the typed body."""
    st.subheader("Segment and encoding checker")
    st.caption(
        "Type or paste a template. Nothing you type is stored or sent. One GSM-7 segment holds 160 characters "
        "(153 each once split); a single character outside GSM-7 switches the whole message to UCS-2: 70 (67)."
    )
    body = st.text_area(
        "Message body", key="checker_body", height=120,
        value="Your Switchboard code is 123456. Don’t share it — we’ll never ask for it.",
    )
    info = templates.segment_info(body)
    c = st.columns(4)
    with c[0]:
        st.metric("Encoding", info.encoding, border=True)
    with c[1]:
        st.metric("Segments", info.segments, border=True,
                  help=f"{info.length} {'septets' if info.is_gsm7 else 'UTF-16 units'}, "
                       f"{info.chars_per_segment} per segment.")
    with c[2]:
        st.metric("Segments as GSM-7", info.segments_if_replaced, border=True,
                  delta=(-info.saving_segments if info.saving_segments else None), delta_color="inverse",
                  help="After replacing look-alike characters (and dropping those with none).")
    with c[3]:
        st.metric("Characters forcing UCS-2", len(info.ucs2_characters), border=True)
    (st.success if info.is_gsm7 else st.warning)(info.advice)
    if info.ucs2_characters:
        swaps = pd.DataFrame(
            [{"character": ch, "code point": f"U+{ord(ch[0]):04X}", "replace with": rep if rep else "(remove: invisible)"}
             for ch, rep in info.replacements]
            + [{"character": ch, "code point": f"U+{ord(ch[0]):04X}", "replace with": "no GSM-7 look-alike"}
               for ch in info.unreplaceable]
        )
        st.dataframe(swaps, hide_index=True, key="swaps")
    return info


def body_costs(view: ui.View, info: templates.SegmentInfo) -> None:
    """What the typed body would cost per message in each country, as typed and as GSM-7."""
    prices = data.run(templates.segment_prices, **view.period)
    if prices.empty:
        ui.nothing_in_period(view, "priced messages")
        return
    st.markdown("**What this body would cost per message**, at the price per segment Twilio billed "
                "in the period:")
    priced = prices.assign(
        cost_now=prices["price_per_segment_usd"] * info.segments,
        cost_gsm7=prices["price_per_segment_usd"] * info.segments_if_replaced,
    )
    priced = priced.assign(saving_per_10k=(priced["cost_now"] - priced["cost_gsm7"]) * 10_000)
    ui.table(priced, key="body_cost", height=300, columns={
        "country_name": "Country",
        "price_per_segment_usd": ui.money_column("Price per segment", precise=True),
        "cost_now": ui.money_column("Cost per message", "This body as typed.", precise=True),
        "cost_gsm7": ui.money_column("Cost as GSM-7", "After the replacements above.", precise=True),
        "saving_per_10k": ui.money_column("Saving per 10,000 messages"),
        "messages": ui.count_column("Messages in period"),
    })


def templates_in_use(view: ui.View) -> None:
    """Cost per delivered message by template and variant, and the per-template table."""
    st.subheader("Templates in use")
    stats = data.run(templates.template_stats, **view.period)
    if stats.empty:
        ui.nothing_in_period(view, "SMS attempts with a template")
        return
    chart = stats.assign(label=stats["template_id"].fillna("(none)") + stats["variant"].map(
        lambda v: f" / {v}" if isinstance(v, str) else ""))
    ui.show(ui.bar(chart.head(15), x="label", y="cost_per_delivered", horizontal=True, money=True,
                   color="encoding", title="Cost per delivered message by template and variant (USD)",
                   y_title="USD per delivered", hover={"messages": ",", "avg_segments": ".2f"}), key="tpl_cost")
    ui.table(stats, key="template_stats", columns={
        "template_id": "Template", "variant": "Variant",
        "messages": ui.count_column("Messages"),
        "encoding": "Encoding",
        "ucs2_share": ui.percent_column("UCS-2 share"),
        "avg_segments": st.column_config.NumberColumn("Avg segments", format="%.2f"),
        "delivery_rate": ui.percent_column("Delivery rate"),
        "conversion_rate": ui.percent_column("Conversion rate"),
        "cost_usd": ui.money_column("Cost"),
        "cost_per_message": ui.money_column("Cost per message", precise=True),
        "cost_per_delivered": ui.money_column("Cost per delivered", precise=True),
    })


view = ui.page_header("Templates", needs_data=False)
info = checker()
bounds = st.session_state.get(ui.BOUNDS_KEY)
if bounds is None or bounds.empty:
    ui.no_data("priced messages")
    st.stop()
body_costs(view, info)
templates_in_use(view)
