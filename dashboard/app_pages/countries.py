"""Countries: the map, a sortable table, and one country's carriers, error codes and trend."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from switchboard.analytics import countries, delivery, errors
from switchboard.dashboard import components as ui
from switchboard.dashboard import data


def country_table(view: ui.View) -> pd.DataFrame:
    """Every country with traffic, with the recommended first channel and a name to show."""
    overview = data.run(countries.country_overview, **view.period)
    advice = data.run(countries.channel_recommendation, **view.period)
    # One key type on both sides: a column of only NULLs (no country known) comes back as float64 from an empty frame.
    key = {"country_iso2": "object"}
    table = overview.astype(key).merge(advice[["country_iso2", "recommended", "reason"]].astype(key),
                                       on="country_iso2", how="left")
    table["recommended"] = table["recommended"].map({"sms": "SMS", "voice": "Voice", "push": "Push"})
    table["country_name"] = (table["country_name"].astype("object").fillna(table["country_iso2"].astype("object"))
                             .fillna("Unknown country"))
    return table


def colour_map(table: pd.DataFrame) -> None:
    metric = st.segmented_control(
        "Colour the map by", ["Delivery rate", "Cost per delivered", "Volume"], default="Delivery rate",
        key="map_metric")
    if metric == "Cost per delivered":
        fig = ui.world_map(table, value="cost_per_delivered", percent=False, money=True,
                           title="Cost per delivered message or answered call (USD)", hover={"sms_sent": ","})
    elif metric == "Volume":
        fig = ui.world_map(table.assign(volume=table["sms_sent"] + table["voice_calls"]), value="volume",
                           percent=False, title="Messages and calls sent",
                           hover={"sms_sent": ",", "voice_calls": ","})
    else:
        fig = ui.world_map(table.rename(columns={"sms_delivery_rate": "delivery_rate"}),
                           hover={"sms_sent": ",", "cost_per_delivered": "$.4f"})
    ui.show(fig, key="country_map")


def all_countries(table: pd.DataFrame) -> list[int]:
    """The sortable table; returns the selected rows."""
    st.subheader("All countries")
    st.caption("Click a column to sort; select a row to open the country below.")
    picked = ui.table(table, key="country_table", selectable=True, height=380, columns={
        "country_name": "Country",
        "sms_sent": ui.count_column("SMS sent"),
        "sms_delivery_rate": ui.percent_column("Delivery rate", "Delivered / (delivered + undelivered + failed)."),
        "voice_calls": ui.count_column("Calls"),
        "answer_rate": ui.percent_column("Answer rate"),
        "sms_share": ui.percent_column("SMS share", "SMS / (SMS + calls)."),
        "voice_share": ui.percent_column("Voice share"),
        "cost_usd": ui.money_column("Cost"),
        "cost_per_delivered": ui.money_column("Cost per delivered", "Cost / (SMS delivered + calls answered).",
                                              precise=True),
        "recommended": st.column_config.TextColumn("Recommended channel", help="See the reason in the drill-down."),
    })
    return list(picked.selection.rows) if picked is not None else []


def pick_focus(table: pd.DataFrame, rows: list[int], names: dict[str, str]) -> str | None:
    """The drill-down's country: a newly selected table row opens it; the selectbox stays free to change after."""
    if rows and rows != st.session_state.get("_country_rows"):
        st.session_state["focus"] = table.iloc[rows[0]]["country_iso2"]
    st.session_state["_country_rows"] = rows
    if st.session_state.get("focus") not in names:
        st.session_state.pop("focus", None)
    return st.selectbox("Country", list(names), format_func=lambda c: names[c], key="focus", bind="query-params")


def carriers_chart(period: dict, name: str) -> None:
    carriers = data.run(delivery.delivery_by, by="carrier", **period)
    if carriers["carrier"].notna().any():
        carriers = ui.with_carrier_labels(carriers).sort_values("sent", ascending=False).head(12)
        ui.show(ui.bar(carriers, x="carrier", y="delivery_rate", horizontal=True, percent=True,
                       title="Delivery rate by carrier (%)", y_title="Delivery rate",
                       hover={"sent": ",", "failed": ","}), key="focus_carriers")
        if (carriers["carrier"] == ui.UNKNOWN_CARRIER).any():
            st.caption(f"**unknown** carrier: {ui.CARRIER_HELP}")
    else:
        st.caption(f"**Carriers:** unknown for numbers in {name}, so delivery cannot be split by "
                   f"carrier. {ui.CARRIER_HELP}")


def drill_down(view: ui.View, row: pd.Series, name: str) -> None:
    """One country: recommendation, headline cards, daily trend, carriers and top error codes."""
    st.subheader(name)
    one = dataclasses.replace(view.filters, countries=(row["country_iso2"],))
    period = {"start": view.start, "end": view.end, "filters": one}
    if isinstance(row.get("reason"), str):
        st.info(f"**Recommended first channel: {row['recommended']}.** {row['reason']}",
                icon=":material/recommend:")
    headline = data.run(delivery.summary_with_change, **period).iloc[0]
    ui.summary_cards(headline, previous=f"{headline['prev_start']:%d %b} – {headline['prev_end']:%d %b %Y}")
    left, right = st.columns(2)
    with left:
        daily = data.run(delivery.delivery_by, by="day", **period)
        ui.show(ui.rate_trend(daily, title=f"Delivery rate per day in {name} (%)"), key="focus_trend")
    with right:
        carriers_chart(period, name)
    top = data.run(errors.top_errors, **period)
    if top.empty:
        st.caption("No failed messages with an error code here in this period.")
    else:
        ui.table(top, key="focus_errors", columns={
            "error_code": st.column_config.NumberColumn("Code", format="%d"),
            "error_name": "Error", "category": "Category", "failures": ui.count_column("Failures"),
            "share_of_failures": ui.percent_column("Share of failures"),
            "error_rate": ui.percent_column("Error rate"), "trend": "Trend", "what_to_do": "What to do",
        })


view = ui.page_header("Countries")
st.caption(ui.period_caption(view) + " SMS and voice per recipient country.")
table = country_table(view)
if table.empty:
    ui.nothing_in_period(view, "messages or calls")
    st.stop()
colour_map(table)
rows = all_countries(table)
# Rows without a known country (a number no country rule places) stay in the table, not in the drill-down.
names = {iso2: name if isinstance(name, str) else iso2
         for iso2, name in zip(table["country_iso2"], table["country_name"]) if isinstance(iso2, str)}
focus = pick_focus(table, rows, names)
if focus:
    drill_down(view, table[table["country_iso2"] == focus].iloc[0], names[focus])
