"""Data: how fresh the warehouse is, what ingest did and rejected, the schema, and a read-only SQL box."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from switchboard.dashboard import components as ui
from switchboard.dashboard import data, live, sql_box


def freshness_cards(fresh: pd.DataFrame) -> None:
    """One card per source, named as a person reads it ("Messages, main account"), with the time since."""
    main = data.main_account_sid()
    cols = st.columns(min(len(fresh), 4))
    for i, row in enumerate(fresh.itertuples()):
        label = ui.source_label(row.source, main)
        ok_at = row.last_ok_run if pd.notna(row.last_ok_run) else row.cursor_updated_at
        if pd.isna(row.seconds_since):  # no successful run (skipped, failed, never), or a time that is not finite
            value = row.last_status if isinstance(row.last_status, str) else "never"
        else:
            value = ui.ago(row.seconds_since)
        details = [f"Source `{row.source}`."]
        if pd.notna(ok_at):
            details.append(f"Last successful run or cursor update: {ok_at} UTC.")
        if isinstance(row.cursor, str):
            details.append(f"Cursor: {row.cursor}.")
        if isinstance(row.last_status, str):
            details.append(f"Last run: {row.last_status}.")
        with cols[i % len(cols)]:
            st.metric(label, value, help=" ".join(details), border=True)
    for row in fresh[fresh["last_status"] == "failed"].itertuples():
        st.warning(f"Last run of **{ui.source_label(row.source, main)}** failed: {ui.mask_text(row.last_error)}")


def freshness_tab(view: ui.View) -> None:
    fresh = data.freshness()
    if fresh.empty:
        st.info(f"No ingest has run yet. {data.GET_DATA_HINT}")
    else:
        freshness_cards(fresh)
    st.subheader("Freshness over time")
    live.freshness_chart(data.freshness_history())
    st.subheader("Ingest runs")
    runs = data.ingest_runs()
    if runs.empty:
        st.caption("No runs recorded.")
        return
    main = data.main_account_sid()
    runs = runs.assign(source=runs["source"].map(lambda source: ui.source_label(source, main)))
    ui.table(ui.privacy(runs, view, text_columns=["error"]), columns={
        "run_id": "Run", "source": "Source", "status": "Status", "started_at": "Started (UTC)",
        "seconds": st.column_config.NumberColumn("Took", format="%.1f s"),
        "rows_read": ui.count_column("Read"), "rows_loaded": ui.count_column("Loaded"),
        "rows_rejected": ui.count_column("Rejected"), "cursor_before": "Cursor before",
        "cursor_after": "Cursor after", "error": "Error",
    }, key="runs")


def rejects_tab(view: ui.View) -> None:
    by_reason = data.rejects_by_reason()
    if by_reason.empty:
        st.success("No records were rejected.")
        return
    st.subheader("Rejects by reason")
    ui.table(by_reason, columns={"source": "Source", "reason": "Reason", "rejects": ui.count_column("Rejected"),
                                 "last_seen": "Last seen (UTC)"}, key="rejects_by_reason")
    st.subheader("Latest rejected records")
    st.caption("Raw lines as ingest read them; phone numbers are masked unless *Show full numbers* is on.")
    ui.table(ui.privacy(data.rejects(), view, text_columns=["raw"]), columns={
        "run_id": "Run", "source": "Source", "location": "File or page", "line": "Line",
        "reason": "Reason", "raw": "Raw record", "rejected_at": "Rejected at (UTC)",
    }, key="rejects")


def schema_tab() -> None:
    st.caption("The analyst views are the stable contract: query these, not the raw tables.")
    described = data.view_descriptions()
    schema = data.schema()
    for row in described.itertuples():
        with st.expander(f"**{row.view_name}**: {row.comment}", expanded=row.view_name == "message_facts"):
            ui.table(schema[schema["view_name"] == row.view_name], columns={
                "column_name": "Column", "data_type": "Type", "comment": "Meaning"}, key=f"schema_{row.view_name}")


DEFAULT_QUERY = ("SELECT country_name, count(*) AS sent, avg(is_delivered::INT) AS delivery_rate\n"
                 "FROM message_facts\nGROUP BY ALL\nORDER BY sent DESC\nLIMIT 20")


def sql_tab(view: ui.View, snapshot: data.Snapshot) -> None:
    st.caption(
        "Read-only: one SELECT / WITH / DESCRIBE / SHOW / SUMMARIZE / EXPLAIN statement, no file access, "
        f"at most {sql_box.DEFAULT_MAX_ROWS:,} rows, {sql_box.DEFAULT_TIMEOUT_S:.0f} s and "
        f"{sql_box.DEFAULT_MEMORY_MB / 1024:.0f} GB. "
        "`to_number` holds phone numbers (masked below unless *Show full numbers* is on)."
    )
    with st.form("sql"):
        query = st.text_area("SQL", key="sql_query", height=140, value=DEFAULT_QUERY)
        submitted = st.form_submit_button("Run", type="primary")
    if submitted:
        # Kept in the session so the result survives other widgets' reruns (downloads, toggles).
        try:
            st.session_state["sql_result"] = (query, sql_box.run_query(snapshot.path, query), None)
        except sql_box.SqlBoxError as err:
            st.session_state["sql_result"] = (query, None, str(err))
    last = st.session_state.get("sql_result")
    if last is None or last[0] != query:
        return
    _, result, error = last
    if error is not None:
        st.error(error)
        return
    frame = ui.privacy(result.frame, view)
    st.caption(f"{len(frame):,} rows" + (f" (cut at {result.max_rows:,})" if result.truncated else "") + ".")
    st.dataframe(frame, hide_index=True, key="sql_result_table")
    left, right, _ = st.columns([1, 1, 4])
    with left:
        st.download_button("Download CSV", sql_box.to_csv_bytes(frame), "switchboard_query.csv",
                           "text/csv", key="dl_csv", on_click="ignore")
    with right:
        st.download_button("Download Parquet", sql_box.to_parquet_bytes(frame), "switchboard_query.parquet",
                           "application/vnd.apache.parquet", key="dl_parquet", on_click="ignore")


view = ui.page_header(
    "Data",
    "Freshness per source, ingest runs, rejected records, the analyst views' schema, and a read-only SQL box.",
    needs_data=False,
)
bounds = st.session_state.get(ui.BOUNDS_KEY)
if (bounds is None or bounds.empty) and not (bounds is not None and bounds.outside):  # else the sidebar says
    ui.no_data()

snapshot = data.current_snapshot()
st.caption(f"Snapshot `{snapshot.path}`, {snapshot.size / 1e6:,.1f} MB.")

tab_fresh, tab_rejects, tab_schema, tab_sql = st.tabs(["Freshness & runs", "Rejects", "Schema", "SQL"])
with tab_fresh:
    freshness_tab(view)
with tab_rejects:
    rejects_tab(view)
with tab_schema:
    schema_tab()
with tab_sql:
    sql_tab(view, snapshot)
