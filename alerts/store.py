"""Alert state across runs: ``plan`` compares one evaluation with the ``alerts`` table, ``apply`` writes it.

Transitions (the clock is the evaluation's ``as_of``, the newest message, so a replay behaves as live):

* a finding with no alert, or with a resolved one: **opened** (or **reopened**), notified;
* a finding whose alert is open: numbers refreshed; **worse** when its impact grew ``worse_factor`` times
  since the last notification, or its severity rose, and notified once the rule's quiet period since that
  notification has passed (until then it stays un-notified, and a later run notifies it if it still is);
* an open alert of a rule that ran, with no finding: **resolved**, notified. A rule that was skipped (its
  table missing) resolves nothing.

Everything is in the database, so a restart neither re-sends (the outbox remembers what was queued and
sent) nor forgets (open alerts stay open until a run no longer finds them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from switchboard.alerts.evaluate import Evaluation
from switchboard.alerts.findings import Finding
from switchboard.alerts.rules import SEVERITIES, Config
from switchboard.core.resources import read_text

COLUMNS = ["alert_id", "rule", "kind", "severity", "country_iso2", "country_name", "carrier", "template_id",
           "error_code", "prefix", "cells", "metric", "baseline_value", "recent_value", "impact", "p_value",
           "q_value", "sentence", "what_to_do", "link", "evidence", "since"]


def ensure(con: Any) -> None:
    """Create the alert tables when missing (idempotent)."""
    text = read_text("switchboard.alerts", "schema.sql")
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())  # no literal in it holds "--"
    for statement in code.split(";"):
        if statement.strip():
            con.execute(statement)


@dataclass(frozen=True)
class Change:
    event: str  # opened, reopened, worse, updated, resolved
    alert_id: str
    rule: str
    notify: bool
    finding: Finding | None  # None for resolved
    previous: dict[str, Any] | None  # the alert row before, None when new


def _rows(con: Any) -> dict[str, dict[str, Any]]:
    cur = con.execute("SELECT * FROM alerts")
    cols = [d[0] for d in cur.description]
    return {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}


def _quiet(config: Config, rule: str, row: dict[str, Any], as_of: datetime) -> bool:
    """Whether the rule's quiet period since the alert's last notification still holds."""
    at = row.get("notified_at")
    if at is None:
        return False
    minutes = config.rule(rule).quiet_minutes if any(r.name == rule for r in config.rules) else 60.0
    return as_of < _utc(at) + timedelta(minutes=minutes)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def plan(con: Any, ev: Evaluation, config: Config) -> list[Change]:
    """What this evaluation changes, without writing anything (``alerts check --dry-run`` prints it)."""
    if ev.as_of is None:
        return []
    rows = _rows(con)
    changes: list[Change] = []
    seen = set()
    for f in ev.findings:
        if f.alert_id in seen:  # two rules cannot share an id (the rule is in it); a guard all the same
            continue
        seen.add(f.alert_id)
        row = rows.get(f.alert_id)
        if row is None:
            changes.append(Change("opened", f.alert_id, f.rule, True, f, None))
        elif row["status"] == "resolved":
            changes.append(Change("reopened", f.alert_id, f.rule, not _quiet(config, f.rule, row, ev.as_of), f, row))
        else:
            rule = config.rule(f.rule)
            grew = f.impact >= rule.worse_factor * max(row["notified_impact"] or 0.0, 1e-9)
            escalated = SEVERITIES.index(f.severity) > SEVERITIES.index(row["severity"])
            if (grew or escalated) and not _quiet(config, f.rule, row, ev.as_of):
                changes.append(Change("worse", f.alert_id, f.rule, True, f, row))
            else:
                changes.append(Change("updated", f.alert_id, f.rule, False, f, row))
    ran = set(ev.evaluated)
    for alert_id, row in rows.items():
        if row["status"] == "open" and row["rule"] in ran and alert_id not in seen:
            changes.append(Change("resolved", alert_id, row["rule"], True, None, row))
    return changes


def apply(con: Any, changes: list[Change], as_of: datetime, config: Config) -> list[str]:
    """Write the changes and queue their notifications; returns the outbox ids queued."""
    queued: list[str] = []
    for c in changes:
        if c.finding is not None:
            _upsert(con, c, as_of)
        else:
            con.execute("UPDATE alerts SET status = 'resolved', resolved_at = $t, updated_at = $t "
                        "WHERE alert_id = $id", {"t": as_of, "id": c.alert_id})
        if c.event == "updated":
            continue
        sentence = c.finding.sentence if c.finding else _resolved_sentence(c.previous or {}, as_of)
        con.execute("INSERT INTO alert_events VALUES ($id, $t, $e, $i, $v, $s, $n)", {
            "id": c.alert_id, "t": as_of, "e": c.event, "i": c.finding.impact if c.finding else None,
            "v": c.finding.recent_value if c.finding else None, "s": sentence, "n": c.notify})
        if c.notify:
            queued += _queue(con, c, sentence, as_of, config)
    return queued


def _upsert(con: Any, c: Change, as_of: datetime) -> None:
    row = c.finding.row()  # type: ignore[union-attr]
    params = {k: row[k] for k in COLUMNS} | {"t": as_of}
    if c.previous is None:
        cols = ", ".join(COLUMNS)
        values = ", ".join(f"${k}" for k in COLUMNS)
        con.execute(f"INSERT INTO alerts ({cols}, status, first_seen, last_seen, updated_at, notifications_sent) "
                    f"VALUES ({values}, 'open', $t, $t, $t, 0)", params)
    else:
        keep_since = c.event != "reopened"  # an alert open across runs keeps the start of its first window
        sets = ", ".join(f"{k} = ${k}" for k in COLUMNS if k != "alert_id" and not (k == "since" and keep_since))
        con.execute(f"UPDATE alerts SET {sets}, status = 'open', last_seen = $t, updated_at = $t, "
                    "resolved_at = NULL WHERE alert_id = $alert_id",
                    {k: v for k, v in params.items() if not (k == "since" and keep_since)})
    if c.notify:
        con.execute("UPDATE alerts SET notified_impact = $i, notified_at = $t WHERE alert_id = $id",
                    {"i": c.finding.impact, "t": as_of, "id": c.alert_id})  # type: ignore[union-attr]


def _resolved_sentence(row: dict[str, Any], as_of: datetime) -> str:
    first = _utc(row["first_seen"]) if row.get("first_seen") else None
    opened = f" (open since {first:%d %b %H:%M} UTC)" if first else ""
    return f"Resolved at {as_of:%d %b %H:%M} UTC{opened}: no longer seen. Was: {row.get('sentence', '')}"


def payload(alert: dict[str, Any], event: str, sentence: str, config: Config) -> dict[str, Any]:
    """The notification's content, the same for every channel (each formats it its own way)."""
    keys = ("alert_id", "rule", "kind", "severity", "country_iso2", "country_name", "carrier", "template_id",
            "error_code", "metric", "baseline_value", "recent_value", "impact", "q_value", "what_to_do")
    out = {k: alert.get(k) for k in keys}
    out |= {"event": event, "status": "resolved" if event == "resolved" else "open", "text": sentence,
            "link": config.dashboard_url + "/" + str(alert.get("link") or "/alerts").lstrip("/"),
            "evidence": json.loads(alert["evidence"]) if alert.get("evidence") else {},
            "first_seen": str(alert.get("first_seen") or ""), "since": str(alert.get("since") or "")}
    return out


def _queue(con: Any, c: Change, sentence: str, as_of: datetime, config: Config) -> list[str]:
    row = _rows_one(con, c.alert_id)
    rule_channels = config.rule(c.rule).channels if any(r.name == c.rule for r in config.rules) else ()
    body = json.dumps(payload(row, c.event, sentence, config), default=str, sort_keys=True)
    ids = []
    for channel in (ch for ch in config.channels if ch in rule_channels):
        nid = f"{c.alert_id}|{c.event}|{as_of.isoformat()}|{channel}"
        # next_attempt_at is wall-clock (delivery's clock), created_at the data's
        con.execute("INSERT INTO alert_outbox VALUES ($id, $a, $e, $c, $p, $t, 'pending', 0, $now, NULL) "
                    "ON CONFLICT DO NOTHING", {"id": nid, "a": c.alert_id, "e": c.event, "c": channel, "p": body,
                                               "t": as_of, "now": datetime.now(UTC)})
        ids.append(nid)
    return ids


def _rows_one(con: Any, alert_id: str) -> dict[str, Any]:
    cur = con.execute("SELECT * FROM alerts WHERE alert_id = $id", {"id": alert_id})
    cols = [d[0] for d in cur.description]
    return dict(zip(cols, cur.fetchone()))
