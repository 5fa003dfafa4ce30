"""Notifications: a real loopback HTTP receiver (Slack-compatible and generic JSON payloads, a failing
receiver retried with backoff, giving up visibly) and a real SMTP server (aiosmtpd). Every attempt is
recorded. Retries are driven by the ``now`` given to ``deliver`` and counted in requests: no sleeps."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest
from aiosmtpd.controller import Controller

from switchboard.alerts import notify, read, rules, run
from tests.alerts_util import end_of, incident_world

T0 = datetime(2030, 1, 1, tzinfo=UTC)  # delivery's clock in these tests: after any queued row's next_attempt_at


class Receiver:
    """A loopback HTTP server that records each POST and answers with the next planned status."""

    def __init__(self, statuses: list[int] | None = None, default: int = 200):
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.statuses, self.default = list(statuses or []), default
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                receiver.paths.append(self.path)
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret-token"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("notify") / "ingest.duckdb"
    con = duckdb.connect(str(path))
    incident_world(total_days=30, con=con)
    con.close()
    return path


@pytest.fixture()
def con(world, tmp_path):
    copy = tmp_path / "ingest.duckdb"
    copy.write_bytes(world.read_bytes())
    c = duckdb.connect(str(copy))
    yield c
    c.close()


@pytest.fixture()
def receiver():
    servers: list[Receiver] = []

    def make(statuses=None, default=200):
        servers.append(Receiver(statuses, default))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def config(**kw) -> rules.Config:
    return replace(rules.parse({"defaults": {"recent_hours": 24}}), backoff_seconds=30, **kw)


def attempts(con):
    return con.execute("SELECT attempt, ok, status_code, target, error FROM alert_notifications "
                       "ORDER BY attempted_at, attempt").fetchall()


def test_slack_payload_reaches_the_webhook_and_the_attempt_is_recorded(con, receiver):
    r = receiver()
    cfg = config(webhooks=(rules.Webhook(r.url, "slack"),))
    out = run(con, cfg, as_of=end_of(28))
    assert len(out.queued) == 1
    d = notify.deliver(con, cfg, now=T0)
    assert (d.sent, d.failed_attempts, d.left) == (1, 0, 0)
    assert r.paths == ["/services/T000/B000/secret-token"]
    body = r.bodies[0]
    sentence = out.changes[0].finding.sentence
    assert body["text"].endswith(sentence) and ":large_orange_circle: *WARNING* opened: error_rise" in body["text"]
    assert body["blocks"][0]["text"]["type"] == "mrkdwn"
    assert "Open in Switchboard" in body["blocks"][1]["elements"][0]["text"]
    port = r.server.server_port
    assert attempts(con) == [(1, True, 200, f"http://127.0.0.1:{port}", None)]  # the secret path is not stored
    assert con.execute("SELECT status FROM alert_outbox").fetchall() == [("sent",)]
    assert con.execute("SELECT notifications_sent FROM alerts").fetchone()[0] == 1
    assert notify.deliver(con, cfg, now=T0 + timedelta(hours=1)).sent == 0 and len(r.bodies) == 1  # not resent


def test_generic_json_payload_carries_every_field(con, receiver):
    r = receiver()
    cfg = config(webhooks=(rules.Webhook(r.url, "json"),), dashboard_url="https://sb.example.com")
    run(con, cfg, as_of=end_of(28))
    notify.deliver(con, cfg, now=T0)
    body = r.bodies[0]
    assert {k: body[k] for k in ("source", "version", "event", "status", "rule", "kind", "severity", "country_iso2",
                                 "carrier", "error_code")} == {
        "source": "switchboard", "version": 1, "event": "opened", "status": "open", "rule": "error_rise",
        "kind": "error_rise", "severity": "warning", "country_iso2": "ID", "carrier": "Indosat Ooredoo Hutchison",
        "error_code": 30007}
    assert body["link"] == "https://sb.example.com/errors?country=Indonesia&dates=2026-11-29&dates=2026-11-30"
    assert body["evidence"]["templates"] == ["pr_standard"] and body["impact"] == pytest.approx(24.0)
    assert body["text"].startswith("In the 24 hours to 30 Nov 23:50 UTC, 50% of SMS to Indonesia")


def test_a_failing_receiver_is_retried_with_backoff_until_it_accepts(con, receiver):
    r = receiver(statuses=[500, 503])
    cfg = config(webhooks=(rules.Webhook(r.url, "json"),))
    run(con, cfg, as_of=end_of(28))
    first = notify.deliver(con, cfg, now=T0)
    assert (first.sent, first.failed_attempts, len(r.bodies)) == (0, 1, 1)
    early = notify.deliver(con, cfg, now=T0 + timedelta(seconds=29))  # the 30 s backoff has not passed
    assert (early.left, len(r.bodies)) == (1, 1)
    second = notify.deliver(con, cfg, now=T0 + timedelta(seconds=30))
    assert (second.failed_attempts, len(r.bodies)) == (1, 2)
    assert notify.deliver(con, cfg, now=T0 + timedelta(seconds=30 + 59)).left == 1  # now 60 s: it doubled
    third = notify.deliver(con, cfg, now=T0 + timedelta(seconds=90))
    assert (third.sent, len(r.bodies)) == (1, 3)
    assert [(a, ok, code) for a, ok, code, _, _ in attempts(con)] == [(1, False, 500), (2, False, 503), (3, True, 200)]
    assert attempts(con)[0][4] == "HTTP 500 Internal Server Error"


def test_a_receiver_that_never_accepts_is_given_up_visibly(con, receiver):
    r = receiver(default=500)
    cfg = config(webhooks=(rules.Webhook(r.url, "slack"),), max_attempts=2)
    run(con, cfg, as_of=end_of(28))
    notify.deliver(con, cfg, now=T0)
    last = notify.deliver(con, cfg, now=T0 + timedelta(minutes=5))
    assert last.gave_up == 1 and len(r.bodies) == 2
    assert notify.deliver(con, cfg, now=T0 + timedelta(days=1)).left == 0 and len(r.bodies) == 2
    listed = read.alert_list(con)
    assert listed.loc[0, "notifications_failed"] == 1 and listed.loc[0, "notifications_sent"] == 0
    tried = read.notifications(con, listed.loc[0, "alert_id"])
    assert tried["status"].tolist() == ["failed", "failed"] and tried["ok"].tolist() == [False, False]


def test_an_unreachable_webhook_is_recorded_with_its_reason(con):
    port = free_port()  # nobody listens on it
    cfg = config(webhooks=(rules.Webhook(f"http://127.0.0.1:{port}/hook", "json"),))
    run(con, cfg, as_of=end_of(28))
    d = notify.deliver(con, cfg, now=T0)
    assert d.failed_attempts == 1
    (attempt, ok, code, target, error), = attempts(con)
    assert (attempt, ok, code, target) == (1, False, None, f"http://127.0.0.1:{port}")
    assert "refused" in error.lower()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


def test_email_reaches_a_real_smtp_server(con):
    inbox = Inbox()
    port = free_port()  # aiosmtpd's start() connects to the port it was given, so 0 will not do
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        mail = rules.Email(("oncall@example.com", "pm@example.org"), "switchboard@example.com", "127.0.0.1", port)
        cfg = config(email=mail)
        out = run(con, cfg, as_of=end_of(28))
        d = notify.deliver(con, cfg, now=T0)
        assert d.sent == 1, d.errors
        (sender, to, content), = inbox.messages
        assert sender == "switchboard@example.com" and to == ["oncall@example.com", "pm@example.org"]
        msg = email.message_from_string(content, policy=email.policy.default)
        assert msg["Subject"].strip() == "[Switchboard] warning: opened error_rise, Indonesia Indosat Ooredoo Hutchison"
        body = msg.get_body().get_content()
        assert out.changes[0].finding.sentence in body and "Open in Switchboard: http" in body
        assert attempts(con)[0][:4] == (1, True, 250, "2 recipient(s) @example.com, example.org")
    finally:
        smtp.stop()


def test_an_smtp_server_that_is_down_is_a_recorded_failed_attempt(con):
    port = free_port()
    cfg = config(email=rules.Email(("oncall@example.com",), "sb@example.com", "127.0.0.1", port))
    run(con, cfg, as_of=end_of(28))
    d = notify.deliver(con, cfg, now=T0)
    assert (d.sent, d.failed_attempts) == (0, 1)
    assert con.execute("SELECT status, attempts FROM alert_outbox").fetchall() == [("pending", 1)]
