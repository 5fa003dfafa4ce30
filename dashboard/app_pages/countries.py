"""Countries: the map, a sortable table, and one country's carriers, error codes and trend."""

from __future__ import annotations

import dataclasses

import streamlit as st

from switchboard.analytics import countries, delivery, errors
from switchboard.dashboard import components as ui
from switchboard.dashboard import data

view = ui.page_header("Countries")
st.caption(ui.period_caption(view) + " SMS and voice per recipient country.")

overview = data.run(countries.country_overview, **view.period)
if overview.empty:
    ui.nothing_in_period(view, "messages or calls")
    st.stop()
advice = data.run(countries.channel_recommendation, **view.period)
# One key type on both sides: a column of only NULLs (no country known) comes back as float64 from an empty frame.
key = {"country_iso2": "object"}
table = overview.astype(key).merge(advice[["country_iso2", "recommended", "reason"]].astype(key), on="country_iso2",
                                   how="left")
table["recommended"] = table["recommended"].map({"sms": "SMS", "voice": "Voice", "push": "Push"})
table["country_name"] = (table["country_name"].astype("object").fillna(table["country_iso2"].astype("object"))
                         .fillna("Unknown country"))

metric = st.segmented_control(
    "Colour the map by", ["Delivery rate", "Cost per delivered", "Volume"], default="Delivery rate", key="map_metric")
if metric == "Cost per delivered":
    fig = ui.world_map(table, value="cost_per_delivered", percent=False, money=True,
                       title="Cost per delivered message or answered call (USD)", hover={"sms_sent": ","})
elif metric == "Volume":
    fig = ui.world_map(table.assign(volume=table["sms_sent"] + table["voice_calls"]), value="volume",
                       percent=False, title="Messages and calls sent", hover={"sms_sent": ",", "voice_calls": ","})
else:
    fig = ui.world_map(table.rename(columns={"sms_delivery_rate": "delivery_rate"}),
                       hover={"sms_sent": ",", "cost_per_delivered": "$.4f"})
ui.show(fig, key="country_map")

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
    "cost_per_delivered": ui.money_column("Cost per delivered", "Cost / (SMS delivered + calls answered).", precise=True),
    "recommended": st.column_config.TextColumn("Recommended channel", help="See the reason in the drill-down."),
})

# --- drill-down ---------------------------------------------------------------------------------
# Rows without a known country (a number no country rule places) stay in the table, not in the drill-down.
names = {iso2: name if isinstance(name, str) else iso2
         for iso2, name in zip(table["country_iso2"], table["country_name"]) if isinstance(iso2, str)}
rows = list(picked.selection.rows) if picked is not None else []
# A newly selected table row opens that country; the selectbox stays free to change afterwards.
if rows and rows != st.session_state.get("_country_rows"):
    st.session_state["focus"] = table.iloc[rows[0]]["country_iso2"]
st.session_state["_country_rows"] = rows
if st.session_state.get("focus") not in names:
    st.session_state.pop("focus", None)
focus = st.selectbox("Country", list(names), format_func=lambda c: names[c], key="focus", bind="query-params")
if focus:
    row = table[table["country_iso2"] == focus].iloc[0]
    st.subheader(names[focus])
    one = dataclasses.replace(view.filters, countries=(focus,))
    period = {"start": view.start, "end": view.end, "filters": one}
    if isinstance(row.get("reason"), str):
        st.info(f"**Recommended first channel: {row['recommended']}.** {row['reason']}",
                icon=":material/recommend:")
    headline = data.run(delivery.summary_with_change, **period).iloc[0]
    ui.summary_cards(headline, previous=f"{headline['prev_start']:%d %b} – {headline['prev_end']:%d %b %Y}")
    left, right = st.columns(2)
    with left:
        daily = data.run(delivery.delivery_by, by="day", **period)
        ui.show(ui.rate_trend(daily, title=f"Delivery rate per day in {names[focus]} (%)"), key="focus_trend")
    with right:
        carriers = data.run(delivery.delivery_by, by="carrier", **period)
        if carriers["carrier"].notna().any():
            carriers = ui.with_carrier_labels(carriers).sort_values("sent", ascending=False).head(12)
            ui.show(ui.bar(carriers, x="carrier", y="delivery_rate", horizontal=True, percent=True,
                           title="Delivery rate by carrier (%)", y_title="Delivery rate",
                           hover={"sent": ",", "failed": ","}), key="focus_carriers")
            if (carriers["carrier"] == ui.UNKNOWN_CARRIER).any():
                st.caption(f"**unknown** carrier: {ui.CARRIER_HELP}")
        else:
            st.caption(f"**Carriers:** unknown for numbers in {names[focus]}, so delivery cannot be split by "
                       f"carrier. {ui.CARRIER_HELP}")
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
