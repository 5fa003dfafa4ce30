"""Notification delivery from the outbox: webhooks (Slack-compatible or generic JSON) and e-mail (SMTP).

Each call of ``deliver`` tries every pending notification that is due once, within a time budget, and
records the attempt in ``alert_notifications`` (ok or not, status code, one-line error with secrets
redacted). A failed attempt is retried by a later call after a backoff that doubles per attempt (from
``backoff_seconds``, capped at an hour); after ``max_attempts`` the notification is marked ``failed`` and
stays visible on the Alerts page. Nothing sleeps: retries wait for the next run, so delivery never holds
the ingest's writer for longer than the budget.

Targets come from the configuration at delivery time and are never stored; attempts record only the
scheme and host of a webhook, or the recipients' domains.
"""

from __future__ import annotations

import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from switchboard.alerts.rules import Config, Email, Webhook
from switchboard.core.twilio import redact_text

MAX_BACKOFF = 3600.0
SEVERITY_MARK = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


@dataclass
class Delivery:
    sent: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    left: int = 0  # pending, not tried in this call (not due yet, or the budget ran out)
    errors: list[str] = field(default_factory=list)


def slack_body(p: dict[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook format: ``text`` (the fallback and the notification) plus blocks."""
    mark = ":white_check_mark:" if p["event"] == "resolved" else SEVERITY_MARK.get(p.get("severity"), "")
    title = f"{mark} *{p['severity'].upper()}* {p['event']}: {p['rule']}".strip()
    return {"text": f"{title}\n{p['text']}", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{title}\n{p['text']}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{p['link']}|Open in Switchboard>"}]},
    ]}


def json_body(p: dict[str, Any]) -> dict[str, Any]:
    """The generic JSON payload: every field of the alert as notified (see README, Alerts)."""
    return {"source": "switchboard", "version": 1, **p}


def webhook_target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def post_webhook(hook: Webhook, p: dict[str, Any], timeout: float) -> tuple[bool, int | None, str | None]:
    body = json.dumps(slack_body(p) if hook.format == "slack" else json_body(p), default=str).encode()
    req = urllib.request.Request(hook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "switchboard-alerts/1"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # http(s) only: checked in rules
            return 200 <= resp.status < 300, resp.status, None
    except urllib.error.HTTPError as exc:
        return False, exc.code, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, None, f"{type(exc).__name__}: {reason}"


def send_email(mail: Email, p: dict[str, Any], timeout: float) -> tuple[bool, int | None, str | None]:
    msg = EmailMessage()
    where = " ".join(str(p[k]) for k in ("country_name", "carrier", "template_id") if p.get(k))
    msg["Subject"] = f"[Switchboard] {p['severity']}: {p['event']} {p['rule']}" + (f", {where}" if where else "")
    msg["From"] = mail.sender
    msg["To"] = ", ".join(mail.to)
    msg.set_content(f"{p['text']}\n\nOpen in Switchboard: {p['link']}\n\nAlert {p['alert_id']}\n"
                    f"Evidence: {json.dumps(p.get('evidence') or {}, default=str)}\n")
    try:
        with smtplib.SMTP(mail.host, mail.port, timeout=timeout) as smtp:
            if mail.starttls:
                smtp.starttls()
            if mail.user:
                smtp.login(mail.user, mail.password)
            refused = smtp.send_message(msg)
        if refused:
            return False, None, f"refused recipients: {len(refused)}"
        return True, 250, None
    except smtplib.SMTPResponseException as exc:
        return False, exc.smtp_code, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
    except (smtplib.SMTPException, OSError, TimeoutError) as exc:
        return False, None, f"{type(exc).__name__}: {exc}"


def _targets(config: Config, channel: str) -> list[tuple[str, Callable[[dict[str, Any], float], tuple]]]:
    if channel == "webhook":
        return [(webhook_target(h.url), lambda p, t, h=h: post_webhook(h, p, t)) for h in config.webhooks]
    if channel == "email" and config.email:
        domains = sorted({a.split("@")[-1] for a in config.email.to})
        return [(f"{len(config.email.to)} recipient(s) @{', '.join(domains)}",
                 lambda p, t: send_email(config.email, p, t))]  # type: ignore[arg-type]
    return []


def deliver(con: Any, config: Config, *, now: datetime | None = None, budget_seconds: float = 10.0) -> Delivery:
    """Try each due pending notification once (see the module docstring); returns what happened."""
    now = now or datetime.now(UTC)
    out = Delivery()
    rows = con.execute("SELECT notification_id, alert_id, channel, payload, attempts FROM alert_outbox "
                       "WHERE status = 'pending' ORDER BY created_at, notification_id").fetchall()
    due = con.execute("SELECT notification_id FROM alert_outbox WHERE status = 'pending' AND next_attempt_at <= $n",
                      {"n": now}).fetchall()
    due_ids = {r[0] for r in due}
    started = time.monotonic()
    for nid, alert_id, channel, body, attempts in rows:
        if nid not in due_ids or time.monotonic() - started > budget_seconds:
            out.left += 1
            continue
        targets = _targets(config, channel)
        if not targets:
            ok, code, error, target = False, None, f"no {channel} target configured any more", None
        else:
            ok, code, error, target = _try(targets, json.loads(body), config.timeout_seconds)
        attempt = attempts + 1
        con.execute("INSERT INTO alert_notifications VALUES ($id, $a, $c, $n, $t, $tg, $ok, $code, $err)", {
            "id": nid, "a": alert_id, "c": channel, "n": attempt, "t": datetime.now(UTC), "tg": target, "ok": ok,
            "code": code, "err": redact_text(error)[:300] if error else None})
        _settle(con, config, nid, alert_id, attempt, ok, error, now, out)
    return out


def _try(targets: list, p: dict[str, Any], timeout: float) -> tuple[bool, int | None, str | None, str]:
    """Every target of the channel; ok only when all accepted (the first failure is reported)."""
    result: tuple[bool, int | None, str | None, str] = (True, None, None, "")
    names = []
    for name, send in targets:
        names.append(name)
        ok, code, error = send(p, timeout)
        if not ok and result[0]:
            result = (False, code, error, name)
        elif ok and result[0]:
            result = (True, code, None, name)
    return result[0], result[1], result[2], ", ".join(names) if result[0] else result[3]


def _settle(con: Any, config: Config, nid: str, alert_id: str, attempt: int, ok: bool, error: str | None,
            now: datetime, out: Delivery) -> None:
    if ok:
        con.execute("UPDATE alert_outbox SET status = 'sent', attempts = $n, last_error = NULL "
                    "WHERE notification_id = $id", {"n": attempt, "id": nid})
        con.execute("UPDATE alerts SET notifications_sent = notifications_sent + 1 WHERE alert_id = $a",
                    {"a": alert_id})
        out.sent += 1
        return
    out.failed_attempts += 1
    out.errors.append(f"{nid}: {error}")
    if attempt >= config.max_attempts:
        status, next_at = "failed", now
        out.gave_up += 1
    else:
        status = "pending"
        next_at = now + timedelta(seconds=min(config.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF))
    con.execute("UPDATE alert_outbox SET status = $s, attempts = $n, next_attempt_at = $at, last_error = $e "
                "WHERE notification_id = $id",
                {"s": status, "n": attempt, "at": next_at, "e": redact_text(error or "")[:300], "id": nid})
