"""How old the data is, on every page, and the page that updates itself when ingest publishes (issue 16).

``data_age()`` is a fragment that Streamlit reruns every ``REFRESH_SECONDS``: it redraws "data as of
HH:MM:SS UTC (N s ago)" from the published snapshot's file time (a cheap ``stat``, no query), and when
the snapshot is a new one (a continuous ingest renamed a new file into place) it reruns the whole app,
so every chart redraws on the new data without the user reloading. ``dashboard.data`` opens the new file.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from switchboard.dashboard import data

REFRESH_SECONDS = 5  # how often a page checks for a new snapshot (an os.stat) and updates its age
SEEN_KEY = "switchboard_snapshot_seen"  # the snapshot this session's page was drawn from


def _published_at(snap: data.Snapshot) -> datetime:
    """The publish time: the snapshot file is a fresh copy renamed into place, so its mtime is the publish."""
    return datetime.fromtimestamp(snap.mtime_ns / 1e9, UTC)


def age_text(snap: data.Snapshot, now: datetime | None = None) -> str:
    """``data as of 23:10:05 UTC (40 s ago)``: seconds under 2 min, then the coarser ``ago`` wording."""
    at = _published_at(snap)
    seconds = max(0.0, ((now or datetime.now(UTC)) - at).total_seconds())
    if seconds < 120:
        ago = f"{seconds:.0f} s ago"
    elif seconds < 3600:
        ago = f"{seconds // 60:.0f} min ago"
    elif seconds < 48 * 3600:
        ago = f"{seconds // 3600:.0f} h ago"
    else:
        ago = f"{seconds // 86400:.0f} days ago"
    day = "" if at.date() == (now or datetime.now(UTC)).date() else f"{at:%d %b %Y} "
    return f"data as of {day}{at:%H:%M:%S} UTC ({ago})"


def _snapshot() -> data.Snapshot | None:
    try:
        return data.current_snapshot()
    except data.WarehouseUnavailable:
        return None


def data_age() -> None:
    """The page header's data age. Notes the snapshot the page is drawn from; the fragment compares."""
    snap = _snapshot()
    st.session_state[SEEN_KEY] = snap.key if snap else None
    _data_age()


@st.fragment(run_every=REFRESH_SECONDS)
def _data_age() -> None:
    """Redrawn every REFRESH_SECONDS; reruns the app when a newer snapshot was published since the page drew."""
    snap = _snapshot()
    if st.session_state.get(SEEN_KEY) != (snap.key if snap else None):
        st.rerun(scope="app")  # a new publish (or the first one): redraw every chart on it
    if snap is None:
        st.caption("No data yet: this page updates when the first ingest publishes.")
    else:
        st.caption(age_text(snap), help="When ingest last published the warehouse. The page checks every "
                   f"{REFRESH_SECONDS} s and redraws by itself when a new snapshot arrives.")


def freshness_chart(history: pd.DataFrame) -> None:
    """The freshness view over time: per source, lag p95 and the newest status's age at each publish."""
    if history.empty:
        st.caption("No freshness history yet: it fills in as ingest runs (`switchboard ingest --every 60s`).")
        return
    fig = go.Figure()
    for source, rows in history.groupby("source", sort=True):
        fig.add_scatter(x=rows["visible_at"], y=rows["lag_p95_s"], mode="lines+markers", name=f"{source}: lag p95",
                        hovertemplate="%{x|%H:%M:%S} UTC<br>lag p95 %{y:,.0f} s<extra>" + str(source) + "</extra>")
        fig.add_scatter(x=rows["visible_at"], y=rows["newest_age_s"], mode="lines", line={"dash": "dot"},
                        name=f"{source}: newest record age",
                        hovertemplate="%{x|%H:%M:%S} UTC<br>newest %{y:,.0f} s old<extra>" + str(source) + "</extra>")
    fig.update_layout(title="Freshness per run: seconds from a record's own time to the warehouse",
                      xaxis_title="Published (UTC)", yaxis_title="seconds", legend_title_text="",
                      hovermode="x unified", margin={"t": 60})
    st.plotly_chart(fig, key="freshness_chart")
