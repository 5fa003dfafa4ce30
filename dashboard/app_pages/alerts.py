"""Alerts: open and resolved incidents (switchboard.alerts), each with its timeline, its notifications and a
link to the filtered view; suspected SMS pumping with its evidence and the prefixes to block.

The page does not follow the sidebar's dates: an alert is about the data's newest hours, whatever period
the other pages show.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from switchboard.alerts import read
from switchboard.dashboard import components as ui
from switchboard.dashboard import data

ICON = {"critical": ":material/error:", "warning": ":material/warning:", "info": ":material/info:"}
RESOLVED_SHOWN = 50

ui.page_header("Alerts", "Raised after every ingest run by the alert rules (built-in, or alerts.toml). "
               "An incident alerts once, again when it gets worse, and when it resolves.")

alerts = data.run(read.alert_list)
if alerts.empty:
    st.success("No alert has been raised. The rules run after every `switchboard ingest`; "
               "`switchboard alerts check --dry-run` shows what they find now.", icon=":material/check_circle:")
    st.stop()

open_ = alerts[alerts["status"] == "open"]
resolved = alerts[alerts["status"] == "resolved"]
c = ui.card_slots(4, per_row=4)
with c[0]:
    ui.metric_card("Open alerts", ui.count(len(open_)))
with c[1]:
    ui.metric_card("Critical", ui.count(int((open_["severity"] == "critical").sum())))
with c[2]:
    ui.metric_card("Resolved", ui.count(len(resolved)))
with c[3]:
    failed = int(alerts["notifications_failed"].sum())
    ui.metric_card("Notifications failed", ui.count(failed),
                   help="Notifications given up after every retry; see each alert's attempts below.")


def _title(row: pd.Series) -> str:
    where = " · ".join(str(row[k]) for k in ("country_name", "carrier", "template_id")
                       if isinstance(row[k], str) and row[k])
    code = f" · {int(row['error_code'])}" if pd.notna(row["error_code"]) else ""
    state = "open" if row["status"] == "open" else f"resolved {row['resolved_at']:%d %b %H:%M}"
    return f"**{row['severity'].upper()}** {row['rule']}: {where or 'all'}{code} ({state})"


def _timeline(events: pd.DataFrame, key: str) -> None:
    if len(events) > 1 and events["impact"].notna().any():
        fig = go.Figure(go.Scatter(x=events["event_at"], y=events["impact"], mode="lines+markers+text",
                                   text=events["event"], textposition="top center"))
        fig.update_layout(height=220, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Impact at each event",
                          yaxis_title="impact")
        ui.show(fig, key=f"timeline_{key}")
    ui.table(events, key=f"events_{key}", columns={
        "event_at": st.column_config.DatetimeColumn("When (UTC)", format="D MMM HH:mm"),
        "event": "Event", "sentence": st.column_config.TextColumn("What was said", width="large"),
        "notify": st.column_config.CheckboxColumn("Notified", help="False: held back by the quiet period")})


def _pumping(ev: dict, key: str) -> None:
    prefixes = ev.get("prefixes") or []
    if prefixes:
        st.error("Prefixes to block: " + ", ".join(f"`{p}`" for p in prefixes), icon=":material/block:")
    per = pd.DataFrame(ev.get("per_prefix") or [])
    if not per.empty:
        ui.table(per, key=f"pumping_{key}", columns={
            "prefix": "Prefix", "n1": ui.count_column("OTP SMS (recent)"),
            "expected": st.column_config.NumberColumn("Expected", format="%.1f"),
            "conversion": ui.percent_column("Codes used"), "new_share": ui.percent_column("New members"),
            "sequential": ui.percent_column("Sequential numbers"),
            "q": st.column_config.NumberColumn("q-value", format="%.2g")})


def _alert(row: pd.Series, i: int) -> None:
    key = f"{i}"
    with st.expander(_title(row), expanded=row["status"] == "open" and i < 5, icon=ICON.get(row["severity"])):
        st.markdown(ui.md_escape(row["sentence"]))
        link = row["link"] if isinstance(row["link"], str) and row["link"] else None
        if link:
            st.markdown(f"[Open the filtered view]({link})")
        ev = read.evidence(row)
        if row["kind"] == "pumping":
            _pumping(ev, key)
        st.caption(f"First seen {row['first_seen']:%d %b %H:%M} UTC, last seen {row['last_seen']:%d %b %H:%M} UTC; "
                   f"{int(row['notifications_sent'])} notification(s) sent"
                   + (f", {int(row['notifications_pending'])} waiting to be retried"
                      if row["notifications_pending"] else "")
                   + (f", {int(row['notifications_failed'])} failed" if row["notifications_failed"] else "")
                   + f". Alert id `{row['alert_id']}`.")
        _timeline(data.run(read.timeline, row["alert_id"]), key)
        attempts = data.run(read.notifications, row["alert_id"])
        if not attempts.empty:
            ui.table(attempts, key=f"attempts_{key}", columns={
                "channel": "Channel", "event": "For", "status": "Status", "attempt": "Attempt",
                "attempted_at": st.column_config.DatetimeColumn("When (UTC)", format="D MMM HH:mm:ss"),
                "target": "Target", "ok": st.column_config.CheckboxColumn("OK"), "status_code": "Code",
                "error": st.column_config.TextColumn("Error", width="medium")})


tab_open, tab_resolved = st.tabs([f"Open ({len(open_)})", f"Resolved ({len(resolved)})"])
with tab_open:
    if open_.empty:
        st.success("Nothing is open.", icon=":material/check_circle:")
    for i, (_, row) in enumerate(open_.iterrows()):
        _alert(row, i)
with tab_resolved:
    if resolved.empty:
        st.caption("No alert has resolved yet.")
    for i, (_, row) in enumerate(resolved.head(RESOLVED_SHOWN).iterrows()):
        _alert(row, len(open_) + i)
    if len(resolved) > RESOLVED_SHOWN:
        st.caption(f"The {RESOLVED_SHOWN} most recent of {len(resolved):,}; the SQL box on the Data page has all "
                   "(`FROM alerts`).")
