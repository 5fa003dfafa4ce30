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
# Sized to fit a 1400 px screen without a horizontal scroll (issue 14): short numeric columns, the
# official name wide enough to read; the long advice is below the table, one line per code.
ui.table(top, key="errors_table", columns={
    "error_code": st.column_config.NumberColumn("Code", format="%d", width=60),
    "error_name": st.column_config.TextColumn("Official name", width=220),
    "category": st.column_config.TextColumn("Category", width=140),
    "failures": ui.count_column("Failures") | {"width": 80},
    "share_of_failures": ui.percent_column("Share", "Share of all failed messages in the period.") | {"width": 80},
    "error_rate": ui.percent_column("Error rate", "Failures / sent.") | {"width": 80},
    "rate_change": ui.percent_column("Change", "Relative change of the error rate vs the previous period.")
    | {"width": 80},
    "trend": st.column_config.TextColumn("Trend", help="New, rising, falling, steady or too few to tell: see above.",
                                         width=110),
    "retryable": st.column_config.CheckboxColumn("Retryable", width=80),
})
with st.expander("What to do, code by code", expanded=True, icon=":material/build:"):
    st.markdown("\n".join(
        f"- **{int(r.error_code)} {ui.md_escape(str(r.error_name or ''))}**: {ui.md_escape(str(r.what_to_do or ''))}"
        + (f" [Twilio docs]({r.more_info})" if isinstance(r.more_info, str) and r.more_info else "")
        for r in top.itertuples()))

st.subheader("Sample messages")
labels = {int(r.error_code): f"{int(r.error_code)} {r.error_name}" for r in top.itertuples()}
code = st.selectbox("Error code", list(labels), format_func=labels.get, key="sample_code")
samples = data.run(errors.error_samples, code, n=10, **view.period)
samples = samples.assign(country=samples["country_iso2"].map(data.country_names()).fillna(samples["country_iso2"]))
st.caption("Message SIDs to look up in the Twilio console or quote in a support ticket.")
ui.table(ui.with_carrier_labels(ui.privacy(samples, view)), key="samples", columns={
    "sid": st.column_config.TextColumn("Message SID", width=270),
    "sent_at": st.column_config.DatetimeColumn("Sent (UTC)", format="YYYY-MM-DD HH:mm", width=140),
    "country": st.column_config.TextColumn("Country", width=110),
    "carrier": ui.carrier_column() | {"width": 110},
    "sender": st.column_config.TextColumn("Sender", width=110),
    "template_id": st.column_config.TextColumn("Template", width=100),
    "status": st.column_config.TextColumn("Status", width=90),
})
