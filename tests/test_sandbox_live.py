"""Live traffic (``switchboard sandbox --live-rate N``): new messages and calls in the same world, served
through the list API and fetch with statuses moving on the clock, send-log files naming their sids,
runtime incidents against their ground truth, and Event Streams batches accepted by the real
``switchboard listen``. The clock is a ``SimClock`` moved by the test; every wait is tied to progress
(``live.tick()`` returns once the clock's records are in; the sink notifies after each post)."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import phonenumbers
import pytest
from twilio.rest import Client

from switchboard.sandbox.api.events import signed_request
from switchboard.sandbox.live import LiveIncident, LivePumping
from switchboard.sandbox.server import LiveConfig, SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate, write_send_logs
from tests.test_sandbox_contract import check, item_schema, list_schema, spec  # noqa: F401 - spec is a fixture

END = datetime(2026, 6, 1, tzinfo=UTC)
MESSAGE = "api.v2010.account.message"
WAIT = 30.0  # seconds: an upper bound on loopback posts, not a pacing guess


@pytest.fixture(scope="module")
def world():
    # Three countries so each gets a real sample; no opted-out members, so an incident's share is exact.
    return generate(Scenario(messages=1500, calls=150, days=5, end=END, opt_out_share=0.0,
                             countries=(("ID", 1.0), ("BR", 1.0), ("US", 1.0))))


def _client(server: SandboxServer) -> Client:
    client = Client(server.account_sid, server.auth_token)
    client.api.base_url = server.base_url
    return client


def _run(server: SandboxServer, clock: SimClock, seconds: int, step: int = 1) -> None:
    for _ in range(seconds // step):
        clock.advance(step)
        server.live.tick()


def _live_messages(client: Client) -> list:
    return [m for m in client.messages.stream(page_size=1000) if m.date_created >= END]


def test_live_traffic_is_served_newest_first_and_moves_with_the_clock(spec, world, tmp_path):  # noqa: F811
    clock = SimClock(END)
    with SandboxServer(world, clock=clock, live=LiveConfig(rate=10, send_logs_dir=tmp_path)) as server:
        _run(server, clock, 60)
        client = _client(server)
        live = _live_messages(client)
        # Poisson(10/s) over 60 s, all accounts: 600 expected; 5 sd either way. Main account only here.
        total = server.live.counts["messages"]
        assert abs(total - 600) < 5 * math.sqrt(600), total
        assert len(live) == sum(1 for r in server.messages.live if r["account_idx"] == 0) > 0
        created = [m.date_created for m in live]
        assert created == sorted(created, reverse=True)  # newest first, across pages of the SDK
        statuses = {m.status for m in live}
        assert "queued" in statuses and {"delivered", "sent"} & statuses, statuses
        page = client.messages.page(page_size=50)
        raw = server.list_page("messages", 0, {"PageSize": "50"}, "/x")
        check(spec, list_schema(spec, "/2010-04-01/Accounts/{AccountSid}/Messages.json"), raw)
        check(spec, item_schema(spec, MESSAGE), raw["messages"], all_fields_of=MESSAGE)
        assert [m.sid for m in page] == [m["sid"] for m in raw["messages"]]
        in_flight = [m for m in live if m.status in ("queued", "sent")]
        before = {m.sid: m.status for m in in_flight}
        clock.advance(3 * 86400)  # past every delivery receipt (the slowest take up to two days)
        after = {sid: client.messages(sid).fetch() for sid in before}
        check(spec, item_schema(spec, MESSAGE), [server.fetch("messages", 0, sid) for sid in list(before)[:20]],
              all_fields_of=MESSAGE)
    assert all(m.status in ("delivered", "undelivered", "failed") for m in after.values())
    assert all(m.date_sent is not None and m.price is not None for m in after.values())


def test_live_delivery_delays_are_the_worlds_per_country_ones(world):
    """Live statuses move with the history's delivery profile of each country: the same median and 90th
    percentile of seconds from sent to delivered, so a slow country stays slow live."""
    import numpy as np

    clock = SimClock(END)
    with SandboxServer(world, clock=clock, live=LiveConfig(rate=20)) as server:
        _run(server, clock, 300, step=2)
        live = [r for r in server.messages.live if r.get("direction") != "inbound" and r["status"] == "delivered"]
    m = world.messages
    history = m[(m["direction"] != "inbound") & (m["status"] == "delivered")]
    got = {}
    for cc in ("ID", "BR", "US"):
        old = (history["final_at"] - history["date_sent"])[history["country"].astype(str) == cc].to_numpy(float)
        new = np.array([r["final_at"] - r["date_sent"] for r in live if r["country"] == cc], dtype=float)
        assert len(old) > 300 and len(new) > 1000, (cc, len(old), len(new))
        for q in (50, 90):
            assert abs(np.percentile(new, q) - np.percentile(old, q)) <= 0.2 * np.percentile(old, q) + 1, (cc, q)
        got[cc] = np.percentile(new, 50)
    assert got["US"] < got["BR"] < got["ID"], got  # the world's profiles: US fastest, Indonesia slowest


def test_live_calls_follow_failed_otp_messages(world):
    clock = SimClock(END)
    with SandboxServer(world, clock=clock, live=LiveConfig(rate=20)) as server:
        _run(server, clock, 300, step=5)
        calls = list(_client(server).calls.stream(page_size=1000))
    live = [c for c in calls if c.date_created >= END]
    assert len(live) == server.live.counts["calls"] > 0
    assert {c.status for c in live} <= {"queued", "ringing", "in-progress", "completed", "busy", "no-answer",
                                          "failed", "canceled"}


def test_same_seed_same_traffic_whatever_the_ticks(world):
    seen = []
    for steps in ([1] * 40, [7] * 5 + [5]):
        clock = SimClock(END)
        server = SandboxServer(world, clock=clock, live=LiveConfig(rate=15))
        server.live.start()
        server.live.stop()  # no background ticks: only the test's
        for step in steps:
            clock.advance(step)
            server.live.tick()
        seen.append([(r["sid"], r["to"], r["status"], r["error_code"], r["final_at"]) for r in server.messages.live])
    assert seen[0] == seen[1] and len(seen[0]) > 400


def test_send_log_files_name_the_live_sids(world, tmp_path):
    write_send_logs(world, tmp_path)
    clock = SimClock(END)
    with SandboxServer(world, clock=clock, live=LiveConfig(rate=10, send_logs_dir=tmp_path, log_interval=10)) as server:
        _run(server, clock, 200, step=2)
        server.live.flush()
        msg_sids = {r["sid"] for r in server.messages.live if r.get("direction") != "inbound"}  # replies: no log
        call_sids = {r["sid"] for r in server.calls.live}
    files = sorted(tmp_path.glob("sends-live-*.jsonl"))
    assert len(files) >= 10  # a new file per 10-second interval
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    sms = [r for r in rows if r["channel"] == "sms"]
    voice = [r for r in rows if r["channel"] == "voice"]
    assert {r["provider_sid"] for r in sms} == msg_sids  # every live message logged, once
    assert len(sms) == len(msg_sids)
    assert {r["provider_sid"] for r in voice} == call_sids
    sms_events = {r["event_id"] for r in sms}
    assert all(r["fallback_of"] in sms_events for r in voice if r["fallback_of"])
    assert set(rows[0]) == {"event_id", "sent_at", "channel", "purpose", "template_id", "experiment_id", "variant",
                            "campaign_id", "user_id", "country", "locale", "provider_sid", "fallback_of"}
    # Experiments keep their assignment rule: one variant per member and experiment.
    arms = {}
    for r in sms:
        if r["experiment_id"]:
            assert arms.setdefault((r["experiment_id"], r["user_id"]), r["variant"]) == r["variant"]
    conversions = [json.loads(line) for f in tmp_path.glob("conversions-live-*.jsonl") for line in f.read_text().splitlines()]
    users = {r["user_id"] for r in rows}
    assert conversions and all(c["user_id"] in users for c in conversions)
    # A new world in the same folder removes the live files of the old one.
    write_send_logs(world, tmp_path)
    assert not list(tmp_path.glob("sends-live-*"))


def test_incident_share_matches_ground_truth(world, tmp_path):
    incident = LiveIncident.parse("ID:30004:0.4:60")
    clock = SimClock(END)
    cfg = LiveConfig(rate=20, incidents=(incident,), send_logs_dir=tmp_path)
    with SandboxServer(world, clock=clock, live=cfg) as server:
        _run(server, clock, 200, step=2)
        messages = _live_messages(_client(server))
        server.live.flush()
    start = END + timedelta(seconds=60)
    final = [m for m in messages if m.status in ("delivered", "undelivered", "failed")
             and phonenumbers.region_code_for_number(phonenumbers.parse(m.to)) == "ID"]
    before = [m for m in final if m.date_created < start]
    after = [m for m in final if m.date_created >= start]
    assert len(before) > 100 and len(after) > 300
    assert not [m for m in before if m.error_code == 30004]
    share = sum(m.error_code == 30004 for m in after) / len(after)
    tolerance = 4 * math.sqrt(0.4 * 0.6 / len(after))  # binomial: 4 standard deviations
    assert abs(share - 0.4) < tolerance, (share, len(after))
    assert {m.status for m in after if m.error_code == 30004} == {"undelivered"}
    others = [m for m in messages if m.date_created >= start and m.status != "queued"
              and phonenumbers.region_code_for_number(phonenumbers.parse(m.to)) != "ID"]
    assert others and not [m for m in others if m.error_code == 30004]
    truth = json.loads((tmp_path / "ground_truth.json").read_text())["live"]["incidents"]
    assert len(truth) == 1
    assert truth[0]["country"] == "ID" and truth[0]["error_code"] == 30004 and truth[0]["share"] == 0.4
    assert truth[0]["start"] == "2026-06-01T00:01:00Z"
    assert abs(truth[0]["observed_share"] - 0.4) < 4 * math.sqrt(0.24 / truth[0]["observed_messages_after_start"])


def test_pumping_sends_codes_to_sequential_numbers_of_new_members_recorded_in_ground_truth(world, tmp_path):
    """--pumping BR:3600:60 on top of 5 members' messages a second: from 60 s on, about one code a second to
    two BR number ranges (valid numbers, mostly sequential), each number a member id never seen, delivered,
    never converted; the members' own traffic is the same as without it; ground truth names the ranges."""
    pump = LivePumping.parse("BR:3600:60")
    assert pump == LivePumping("BR", 3600.0, 60.0)
    clock = SimClock(END)
    cfg = LiveConfig(rate=5, pumping=(pump,), send_logs_dir=tmp_path)
    with SandboxServer(world, clock=clock, live=cfg) as server:
        _run(server, clock, 300, step=5)
        server.live.flush()
        live = [dict(r) for r in server.messages.live if r.get("direction") != "inbound"]
    rows = [json.loads(line) for f in sorted(tmp_path.glob("sends-live-*.jsonl")) for line in f.read_text().splitlines()]
    truth = json.loads((tmp_path / "ground_truth.json").read_text())["live"]["pumping"]
    assert len(truth) == 1 and truth[0]["country"] == "BR" and truth[0]["start"] == "2026-06-01T00:01:00Z"
    prefixes = truth[0]["prefixes"]
    assert len(prefixes) == 2 and all(p.startswith("+55") for p in prefixes)
    pumped = [r for r in live if r.get("_pump") == 0]  # (members' numbers can be in the ranges too)
    assert all(any(r["to"].startswith(p) for p in prefixes) for r in pumped)
    # Poisson(1/s) over 240 s: 240 expected, 5 sd either way
    assert abs(len(pumped) - 240) < 5 * math.sqrt(240) and truth[0]["observed_messages"] == len(pumped)
    assert min(r["date_created"] for r in pumped) >= END.timestamp() + 60
    assert {r["status"] for r in pumped} <= {"delivered"} and {r["error_code"] for r in pumped} == {0}
    for r in pumped:
        number = phonenumbers.parse(r["to"])
        assert phonenumbers.is_valid_number(number) and phonenumbers.region_code_for_number(number) == "BR"
    nums = sorted({int(r["to"][1:]) for r in pumped})
    sequential = sum(1 for a, b in itertools.pairwise(nums) if b - a <= 10) / (len(nums) - 1)
    assert sequential > 0.8, sequential
    logged = {r["provider_sid"]: r for r in rows}
    pumped_rows = [logged[r["sid"]] for r in pumped]
    assert {r["purpose"] for r in pumped_rows} == {"verification", "password_reset"}
    members = set(world.users["user_id"])
    users = {r["user_id"] for r in pumped_rows}
    assert not users & members and len(users) == len({r["to"] for r in pumped}) == truth[0]["new_members"]
    conversions = [json.loads(line) for f in tmp_path.glob("conversions-live-*.jsonl")
                   for line in f.read_text().splitlines()]
    assert not {c["user_id"] for c in conversions} & users
    # the members' traffic is what it is without pumping
    clock = SimClock(END)
    with SandboxServer(world, clock=clock, live=LiveConfig(rate=5)) as plain:
        _run(plain, clock, 300, step=5)
        members_only = [(r["to"], r["date_created"], r["status"]) for r in plain.messages.live
                        if r.get("direction") != "inbound"]
    assert [(r["to"], r["date_created"], r["status"]) for r in live if r not in pumped] == members_only


def test_the_incident_flag_repeats_and_ground_truth_records_each(world, tmp_path):
    import argparse

    from switchboard.sandbox.cli import add_arguments, live_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--live-rate", "20", "--incident", "ID:30004:0.4:60", "--incident", "BR:30007:0.5"])
    cfg = live_from_args(args, tmp_path)
    assert [(i.country, i.error_code, i.share, i.after_seconds) for i in cfg.incidents] == [
        ("ID", 30004, 0.4, 60.0), ("BR", 30007, 0.5, 0.0)]
    clock = SimClock(END)
    with SandboxServer(world, clock=clock, live=cfg) as server:
        _run(server, clock, 200, step=2)
        messages = _live_messages(_client(server))
        server.live.flush()
    truth = {t["country"]: t for t in json.loads((tmp_path / "ground_truth.json").read_text())["live"]["incidents"]}
    assert set(truth) == {"ID", "BR"}
    assert (truth["BR"]["error_code"], truth["BR"]["share"], truth["BR"]["start"]) == (30007, 0.5, "2026-06-01T00:00:00Z")
    assert (truth["ID"]["error_code"], truth["ID"]["start"]) == (30004, "2026-06-01T00:01:00Z")
    for cc, code in (("ID", 30004), ("BR", 30007)):
        t = truth[cc]
        start = END + timedelta(seconds=t["after_seconds"])
        final = [m for m in messages if m.status in ("delivered", "undelivered", "failed") and m.date_created >= start
                 and phonenumbers.region_code_for_number(phonenumbers.parse(m.to)) == cc]
        share = sum(m.error_code == code for m in final) / len(final)
        assert abs(share - t["share"]) < 4 * math.sqrt(t["share"] * (1 - t["share"]) / len(final)), (cc, share)
        assert abs(t["observed_share"] - t["share"]) < 4 * math.sqrt(0.25 / t["observed_messages_after_start"])
    # each incident strikes its own country only (30004 is no error of the world's own mix)
    others = [m for m in messages if phonenumbers.region_code_for_number(phonenumbers.parse(m.to)) != "ID"]
    assert others and not [m for m in others if m.error_code == 30004]


@pytest.mark.parametrize("flag, says", [
    (["--incident", "ID:30007:1.5"], "SHARE must be in (0, 1]"),
    (["--incident", "ZZ:30007:0.4"], "unknown country"),
    (["--incident", "ID:123:0.4"], "is not one the sandbox renders"),
    (["--incident", "ID:30007"], "COUNTRY:ERROR_CODE:SHARE"),
    (["--live-rate", "-1"], "expected a number >= 0"),
    (["--event-sink", "ftp://x"], "http(s)://"),
    (["--incident", "ID:30007:0.4"], "add --live-rate N"),
    (["--pumping", "NG:0"], "MESSAGES_PER_HOUR must be in (0, 1000000]"),
    (["--pumping", "ZZ:600"], "unknown country"),
    (["--pumping", "NG"], "COUNTRY:MESSAGES_PER_HOUR"),
    (["--pumping", "NG:600:-5"], "AFTER_SECONDS must be >= 0"),
    (["--pumping", "NG:600"], "add --live-rate N"),
])
def test_bad_live_flags_exit_2_with_one_line(flag, says, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "switchboard.sandbox.cli", "--port", "0", "--messages", "200",
                           "--calls", "10", "--days", "2", "--send-logs-dir", str(tmp_path), *flag],
                          check=False, capture_output=True, text=True, timeout=120, input="")
    assert proc.returncode == 2, proc.stderr
    last = [line for line in proc.stderr.splitlines() if line.strip() and "usage" not in line
            and not line.startswith(" ")][-1]
    assert says in last, proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_incident_where_the_world_sends_nothing_is_refused(world):
    from switchboard.sandbox.cli import _check_incidents

    _check_incidents(LiveConfig(rate=1, incidents=(LiveIncident.parse("ID:30007:0.4"),)), world)
    with pytest.raises(ValueError, match="the world sends nothing to JP; pick one of BR, ID, US"):
        _check_incidents(LiveConfig(rate=1, incidents=(LiveIncident.parse("JP:30007:0.4"),)), world)


def test_event_stream_signature_is_the_one_twilio_documents():
    from twilio.request_validator import RequestValidator

    body = b'[{"id": "NO1", "type": "com.twilio.messaging.message.delivered"}]'
    url, headers = signed_request("http://127.0.0.1:8787/twilio/events", body, "tok")
    assert url.endswith("?bodySHA256=" + __import__("hashlib").sha256(body).hexdigest())
    assert RequestValidator("tok").validate(url, body.decode(), headers["X-Twilio-Signature"])
    assert not RequestValidator("tok").validate(url, body.decode() + " ", headers["X-Twilio-Signature"])


# Twilio's documented Messaging.MessageStatus data fields (docs/events/event-types/messaging/outbound-message)
STATUS_REQUIRED = {"messageSid", "timestamp", "accountSid", "eventName", "apiVersion", "from", "to", "messageStatus"}
STATUS_OPTIONAL = {"messagingServiceSid", "errorCode", "body", "statusCallBackUrl", "tags", "mnc", "mcc",
                   "rawDlrDoneDate", "numberOfSegments"}


def test_event_streams_events_follow_twilios_outbound_message_schema():
    from switchboard.sandbox.api.events import DATASCHEMA, message_events

    account = "AC" + "1" * 32
    rec = {"sid": "SM" + "2" * 32, "from": "+12065550100", "to": "+6281234567890", "body": "Acme: hello",
           "num_segments": 2, "messaging_service_sid": "MG" + "3" * 32, "error_code": 30007, "country": "ID",
           "carrier": "Telkomsel", "status": "undelivered", "date_sent": 1_780_000_000.0, "final_at": 1_780_000_004.5}
    events = [e for _, e in message_events(rec, account)]
    assert [e["type"] for e in events] == ["com.twilio.messaging.message.sent",
                                          "com.twilio.messaging.message.undelivered"]
    for e in events:
        # a CloudEvents 1.0 envelope, as Twilio sends it
        assert set(e) == {"specversion", "type", "source", "id", "dataschema", "datacontenttype", "time", "data"}
        assert e["specversion"] == "1.0" and e["dataschema"] == DATASCHEMA and e["data"]["eventName"] == e["type"]
        assert STATUS_REQUIRED <= set(e["data"]) <= STATUS_REQUIRED | STATUS_OPTIONAL, set(e["data"])
        assert e["data"]["messageStatus"] in {"QUEUED", "FAILED", "SENT", "DELIVERED", "UNDELIVERED", "READ"}
        assert isinstance(e["data"]["numberOfSegments"], int) and e["data"]["messageSid"] == rec["sid"]
        assert e["time"] == e["data"]["timestamp"] and e["time"].endswith("Z")
    sent, final = (e["data"] for e in events)
    assert "errorCode" not in sent and final["errorCode"] == 30007 and isinstance(final["errorCode"], int)
    assert final["mcc"] == "510" and len(final["mnc"]) == 2  # Indonesia's network
    assert len({e["id"] for e in events}) == 2
    assert [e["id"] for _, e in message_events(rec, account)] == [e["id"] for e in events]  # stable: retries dedupe


def _wait_callbacks(server: SandboxServer) -> dict[str, int]:
    """Until every scheduled callback was answered or given up (polls the dispatcher's progress counters)."""
    pause = threading.Event()  # never set: wait() is a short pause between two reads of the counters
    deadline = time.monotonic() + WAIT
    stats = server.callback_stats
    while time.monotonic() < deadline and stats["posted"] + stats["given_up"] < server._callbacks.scheduled:
        pause.wait(0.02)
        stats = server.callback_stats
    return stats


@pytest.mark.slow
def test_event_streams_and_callbacks_reach_the_real_receiver(world, tmp_path, monkeypatch):
    from switchboard.ingest.receiver import ReadStats, iter_events
    from tests.receiver_util import Receiver

    clock = SimClock(END)
    # The sink is the main account's; a subaccount's callbacks are signed with its own token.
    monkeypatch.setenv("SWITCHBOARD_LISTEN_EXTRA_TOKENS", world.accounts[1]["auth_token"])
    spool = tmp_path / "spool"
    with Receiver(spool, world.accounts[0]["auth_token"]) as receiver:
        cfg = LiveConfig(rate=5, event_sink=f"{receiver.base}/twilio/events",
                         status_callback=f"{receiver.base}/twilio/status")
        with SandboxServer(world, clock=clock, live=cfg) as server:
            _run(server, clock, 40)
            server.live.stop()  # no new traffic after the jump: only what entered in these 40 s
            clock.advance(3 * 86400)  # every status final: every event and callback due
            sink = server.event_sink
            assert sink.wait_for(lambda stats, held: held == 0 or stats["failed_posts"] > 0, WAIT), sink.stats
            assert sink.stats["failed_posts"] == 0 and sink.stats["events"] > 0, sink.stats
            cb_stats = _wait_callbacks(server)
            live = {r["sid"]: r for r in server.messages.live}
            posted = sink.stats["events"]
        stats = ReadStats()
        events = list(iter_events(spool, stats=stats))
    assert cb_stats["given_up"] == 0 and cb_stats["posted"] > 0, cb_stats  # a 403 would be given up
    streamed = [e for e in events if e.source == "event-stream"]
    assert len(streamed) == posted
    assert {e.sid for e in streamed} == set(live)
    finals = {e.sid: e for e in streamed if e.status != "sent"}
    assert all(finals[sid].status == rec["status"] for sid, rec in live.items())
    assert all((finals[sid].error_code or 0) == rec["error_code"] for sid, rec in live.items())
    callbacks = [e for e in events if e.source == "callback" and e.resource == "message"]
    assert {e.sid for e in callbacks} == set(live)


def test_a_failed_batch_is_retried_with_the_same_event_ids(world):
    """A sink answering 500 first: the batch comes again after its backoff (server clock), same ids."""
    got: list[tuple[int, list[str]]] = []
    cond = threading.Condition()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with cond:
                status = 500 if not got else 200
                got.append((status, [e["id"] for e in body]))
                cond.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    clock = SimClock(END)
    try:
        cfg = LiveConfig(rate=2, event_sink=f"http://127.0.0.1:{httpd.server_address[1]}/sink")
        with SandboxServer(world, clock=clock, live=cfg) as server:
            _run(server, clock, 10)  # about 20 messages: several events due
            assert server.live.counts["messages"] > 0
            sink = server.event_sink
            assert sink.wait_for(lambda stats, held: stats["failed_posts"] >= 1, WAIT)
            clock.advance(1.5)  # the first retry comes 1 s (server clock) after the failure
            assert sink.wait_for(lambda stats, held: stats["batches"] >= 1, WAIT), sink.stats
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert got[0][0] == 500 and got[1][0] == 200
    assert set(got[0][1]) <= {i for _, ids in got[1:] for i in ids}


@pytest.mark.slow
def test_cli_live_files_are_loaded_by_switchboard_ingest(tmp_path):
    """The real `switchboard sandbox --live-rate` process on the wall clock: once the SDK sees live
    messages it is stopped with SIGTERM (it writes its last rows), and `switchboard ingest --source
    send-logs` loads every live row, none rejected."""
    import duckdb

    logs = tmp_path / "logs"
    proc = subprocess.Popen([sys.executable, "-m", "switchboard.sandbox.cli", "--port", "0", "--messages", "300",
                             "--calls", "20", "--days", "2", "--send-logs-dir", str(logs), "--live-rate", "20",
                             "--live-log-interval", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        while not lines or ("Ctrl-C" not in lines[-1] and lines[-1]):
            lines.append(proc.stdout.readline())
        env = dict(x.strip().removeprefix("export ").split("=", 1) for x in lines if x.strip().startswith("export "))
        client = Client(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"])
        client.api.base_url = env["SWITCHBOARD_TWILIO_BASE_URL"]
        start = datetime.now(UTC) - timedelta(seconds=5)
        live: list = []
        deadline = time.monotonic() + 60
        while len(live) < 20 and time.monotonic() < deadline:  # each round is one list request: progress
            live = [m for m in client.messages.list(limit=100) if m.date_created >= start]
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    assert len(live) >= 20
    truth = json.loads((logs / "ground_truth.json").read_text())["live"]
    rows = [json.loads(line) for f in logs.glob("sends-live-*.jsonl") for line in f.read_text().splitlines()]
    assert len([r for r in rows if r["channel"] == "sms"]) == truth["messages"] >= len(live)
    assert {m.sid for m in live} <= {r["provider_sid"] for r in rows}
    subprocess.run([sys.executable, "-m", "switchboard.cli", "ingest", "--source", "send-logs", "--quiet",
                    "--send-logs", str(logs / "sends-*"), "--send-logs", str(logs / "conversions-*"),
                    "--data-dir", str(tmp_path / "wh")], check=True, timeout=300)
    con = duckdb.connect(str(tmp_path / "wh" / "ingest.duckdb"), read_only=True)
    loaded = con.execute("select count(*) from send_log where event_id like 'evt_l%'").fetchone()[0]
    assert loaded == len(rows)
    assert con.execute("select count(*) from rejects").fetchone()[0] == 0
