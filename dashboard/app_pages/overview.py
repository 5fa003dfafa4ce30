"""Overview: headline numbers with their change, the delivery-rate trend, the world map, what changed."""

from __future__ import annotations

import streamlit as st

from switchboard.analytics import countries, delivery
from switchboard.dashboard import components as ui
from switchboard.dashboard import data

view = ui.page_header("Overview")
st.caption(ui.period_caption(view) + " SMS delivery; change against the previous period of equal length.")

headline = data.run(delivery.summary_with_change, **view.period).iloc[0]
previous = f"{headline['prev_start']:%d %b} – {headline['prev_end']:%d %b %Y}"
ui.summary_cards(headline, previous=previous)

if headline["sent"] == 0:
    ui.nothing_in_period(view)
else:
    left, right = st.columns([1, 1])
    with left:
        daily = data.run(delivery.delivery_by, by="day", **view.period)
        ui.show(ui.rate_trend(daily, title="Delivery rate per day (%), with 95% interval"), key="trend")
    with right:
        by_country = data.run(countries.country_overview, **view.period)
        ui.show(ui.world_map(by_country.rename(columns={"sms_delivery_rate": "delivery_rate"}),
                             hover={"sms_sent": ",", "cost_per_delivered": "$.4f"}), key="map")

st.subheader("What changed")
ui.what_changed(view)
