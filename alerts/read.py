"""What the dashboard's Alerts page reads from the published snapshot: ``fn(con, ...) -> DataFrame``.

A warehouse published before the alerts existed has no alert tables: every function then returns an
empty frame with its columns (the page says no alert has been raised yet).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

ALERT_COLUMNS = ["alert_id", "rule", "kind", "severity", "status", "country_iso2", "country_name", "carrier",
                 "template_id", "error_code", "sentence", "what_to_do", "link", "evidence", "impact",
                 "baseline_value", "recent_value", "q_value", "first_seen", "last_seen", "resolved_at",
                 "notifications_sent", "notifications_failed", "notifications_pending"]
EVENT_COLUMNS = ["alert_id", "event_at", "event", "impact", "recent_value", "sentence", "notify"]
ATTEMPT_COLUMNS = ["alert_id", "channel", "event", "status", "attempt", "attempted_at", "target", "ok",
                   "status_code", "error"]
SEVERITY_ORDER = "CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"


def _has(con: Any, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                            "AND table_name = $t", {"t": table}).fetchone()[0])


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def alert_list(con: Any, status: str | None = None) -> pd.DataFrame:
    """Alerts, open first, then by severity and last seen; ``status`` 'open' or 'resolved' filters."""
    if not _has(con, "alerts"):
        return _empty(ALERT_COLUMNS)
    where, params = ("WHERE a.status = $s", {"s": status}) if status else ("", {})
    return con.execute(f"""
        SELECT a.alert_id, rule, kind, severity, a.status, country_iso2, country_name, carrier, template_id,
               error_code, sentence, what_to_do, link, evidence, impact, baseline_value, recent_value, q_value,
               first_seen, last_seen, resolved_at, notifications_sent,
               coalesce(o.failed, 0) AS notifications_failed, coalesce(o.pending, 0) AS notifications_pending
        FROM alerts a
        LEFT JOIN (SELECT alert_id, count(*) FILTER (WHERE status = 'failed') AS failed,
                          count(*) FILTER (WHERE status = 'pending') AS pending
                   FROM alert_outbox GROUP BY 1) o USING (alert_id)
        {where}
        ORDER BY a.status = 'resolved', {SEVERITY_ORDER}, last_seen DESC, a.alert_id""", params).df()


def open_count(con: Any) -> int:
    """Open alerts: the sidebar badge."""
    if not _has(con, "alerts"):
        return 0
    return int(con.execute("SELECT count(*) FROM alerts WHERE status = 'open'").fetchone()[0])


def timeline(con: Any, alert_id: str) -> pd.DataFrame:
    """The alert's events, oldest first (opened, worse, resolved, reopened)."""
    if not _has(con, "alert_events"):
        return _empty(EVENT_COLUMNS)
    return con.execute("SELECT * FROM alert_events WHERE alert_id = $a ORDER BY event_at, event",
                       {"a": alert_id}).df()[EVENT_COLUMNS]


def notifications(con: Any, alert_id: str) -> pd.DataFrame:
    """Every notification of the alert with each delivery attempt (an unattempted one has attempt NULL)."""
    if not _has(con, "alert_outbox"):
        return _empty(ATTEMPT_COLUMNS)
    return con.execute("""
        SELECT o.alert_id, o.channel, o.event, o.status, n.attempt, n.attempted_at, n.target, n.ok,
               n.status_code, coalesce(n.error, CASE WHEN n.attempt IS NULL THEN o.last_error END) AS error
        FROM alert_outbox o LEFT JOIN alert_notifications n USING (notification_id)
        WHERE o.alert_id = $a ORDER BY o.created_at, o.channel, n.attempt""", {"a": alert_id}).df()[ATTEMPT_COLUMNS]


def evidence(row: pd.Series | dict[str, Any]) -> dict[str, Any]:
    raw = row["evidence"]
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {}
