"""Errors: which Twilio error codes cost deliveries, which are new or rising, what to do, sample sids."""

from __future__ import annotations

import streamlit as st

from switchboard.analytics import errors
from switchboard.dashboard import components as ui
from switchboard.dashboard import data

view = ui.page_header("Errors")
st.caption(ui.period_caption(view) + " Failed SMS (undelivered or failed) by Twilio error code, "
           "against the previous period of equal length.")

top = data.run(errors.top_errors, limit=15, **view.period)
if top.empty:
    ui.nothing_in_period(view, "failed messages with an error code")
    st.stop()

# The banner and the table's Trend column share one definition (analytics.errors.classify): a code is
# "rising" in the table exactly when the banner lists it.
rising = data.run(errors.new_or_rising_errors, **view.period)
if rising.empty:
    st.success("No error code is new or rising against the previous period.", icon=":material/check_circle:")
else:
    for r in rising.itertuples():
        verb = "appeared" if r.status == "new" else f"rose {r.rate_ratio:.1f}×"
        st.warning(
            f"**{r.error_code} {r.error_name}** ({r.category}) {verb}: {r.failures:,} failures, error rate "
            f"{ui.pct(r.error_rate, 2)} vs {ui.pct(r.error_rate_prev, 2)} before "
            f"(about {r.excess_failures:,.0f} extra failures). {r.what_to_do}",
            icon=":material/trending_up:",
        )

left, right = st.columns(2)
with left:
    chart = top.head(10)
    names = chart["error_name"].fillna("").map(lambda n: n if len(n) <= 32 else n[:31] + "…")
    chart = chart.assign(label=chart["error_code"].astype(str) + " " + names)
    ui.show(ui.bar(chart, x="label", y="failures", horizontal=True,
                   title="Top error codes (failed messages)", y_title="Failed messages",
                   hover={"category": "", "share_of_failures": ".1%", "error_rate": ".2%"}), key="top_errors")
with right:
    trend = data.run(errors.error_trend, top_n=5, **view.period)
    trend = trend.assign(code=trend["error_code"].astype(str) + " " + trend["error_name"].fillna(""))
    ui.show(ui.lines(trend, x="day", y="error_rate", color="code", percent=True,
                     title="Daily error rate of the top 5 codes (% of sent)", y_title="Error rate"), key="error_trend")

st.subheader("Error codes and what to do")
st.caption("Trend, against the previous period of equal length. " + errors.trend_explained())
ui.table(top, key="errors_table", columns={
    "error_code": st.column_config.NumberColumn("Code", format="%d"),
    "error_name": "Official name",
    "category": "Category",
    "failures": ui.count_column("Failures"),
    "share_of_failures": ui.percent_column("Share of failures"),
    "error_rate": ui.percent_column("Error rate", "Failures / sent."),
    "rate_change": ui.percent_column("Change", "Relative change of the error rate vs the previous period."),
    "trend": "Trend",
    "retryable": st.column_config.CheckboxColumn("Retryable"),
    "what_to_do": st.column_config.TextColumn("What to do", width="large"),
    "more_info": st.column_config.LinkColumn("Docs", display_text="twilio.com"),
})

st.subheader("Sample messages")
labels = {int(r.error_code): f"{int(r.error_code)} {r.error_name}" for r in top.itertuples()}
code = st.selectbox("Error code", list(labels), format_func=labels.get, key="sample_code")
samples = data.run(errors.error_samples, code, n=10, **view.period)
samples = samples.assign(country=samples["country_iso2"].map(data.country_names()).fillna(samples["country_iso2"]))
st.caption("Message SIDs to look up in the Twilio console or quote in a support ticket.")
ui.table(ui.with_carrier_labels(ui.privacy(samples, view)), key="samples", columns={
    "sid": "Message SID", "sent_at": st.column_config.DatetimeColumn("Sent (UTC)", format="YYYY-MM-DD HH:mm"),
    "country": "Country", "carrier": ui.carrier_column(), "sender": "Sender", "template_id": "Template",
    "status": "Status",
})
