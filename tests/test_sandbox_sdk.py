"""The official twilio SDK against the sandbox on a free port: list, stream, fetch, create,
filters, errors, magic numbers, faults, lifecycle and status callbacks."""

from __future__ import annotations

import http.client
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from switchboard.sandbox.server import FaultConfig, SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate

END = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(messages=1000, calls=100, days=7, end=END))


@pytest.fixture(scope="module")
def server(world):
    with SandboxServer(world) as s:
        yield s


def client_for(server: SandboxServer, sid=None, token=None, account_sid=None) -> Client:
    c = Client(sid or server.account_sid, token or server.auth_token, account_sid=account_sid)
    c.api.base_url = server.base_url
    return c


def main_messages(world):
    return world.messages[world.messages["account_idx"] == 0]


def test_stream_across_pages_returns_the_whole_account(server, world):
    c = client_for(server)
    got = list(c.messages.stream(page_size=100))
    expected = main_messages(world)
    assert len(got) == len(expected) > 500
    assert [m.sid for m in got] == expected["sid"].tolist()[::-1]  # newest first
    created = [m.date_created for m in got]
    assert created == sorted(created, reverse=True)
    calls = list(c.calls.stream(page_size=30))
    assert len(calls) == len(world.calls)
    assert {m.status for m in got if m.direction == "outbound-api"} <= {"delivered", "undelivered", "failed"}
    inbound = [m for m in got if m.direction == "inbound"]  # members' replies (issue 18)
    assert inbound and {m.status for m in inbound} == {"received"}


def test_list_page_and_fetch(server, world):
    c = client_for(server)
    page = c.messages.page(page_size=20)
    assert len(list(page)) == 20
    assert page.next_page() is not None
    first = c.messages.list(limit=5)
    fetched = c.messages(first[0].sid).fetch()
    assert fetched.sid == first[0].sid and fetched.body == first[0].body
    row = world.messages.set_index("sid").loc[fetched.sid]
    assert fetched.to == row["to"] and fetched.status == row["status"]
    assert int(fetched.num_segments) == int(row["num_segments"])
    assert float(fetched.price) == pytest.approx(-row["price"], abs=1e-5)
    call = c.calls.list(limit=1)[0]
    assert c.calls(call.sid).fetch().duration == call.duration


def test_same_seed_same_records(world):
    other = generate(Scenario(messages=1000, calls=100, days=7, end=END))
    with SandboxServer(world) as a, SandboxServer(other) as b:
        ra = [(m.sid, m.to, m.status, m.price, m.body) for m in client_for(a).messages.list(page_size=200)]
        rb = [(m.sid, m.to, m.status, m.price, m.body) for m in client_for(b).messages.list(page_size=200)]
        assert ra == rb and a.accounts == b.accounts


def test_date_sent_after_to_and_status_filters(server, world):
    c = client_for(server)
    m = main_messages(world)
    after = END - timedelta(days=2, hours=5)
    got = list(c.messages.stream(date_sent_after=after, page_size=100))
    assert len(got) == int((m["date_sent"] >= after.timestamp()).sum()) > 0
    assert all(x.date_sent >= after for x in got)
    before = list(c.messages.stream(date_sent_before=after, page_size=1000))
    assert len(before) + len(got) == len(m) + int((m["date_sent"] == int(after.timestamp())).sum())
    day = list(c.messages.stream(date_sent=datetime(2026, 5, 28).date().isoformat()))
    on_day = (m["date_sent"] >= datetime(2026, 5, 28, tzinfo=UTC).timestamp()) & (
        m["date_sent"] < datetime(2026, 5, 29, tzinfo=UTC).timestamp())
    assert len(day) == int(on_day.sum())
    to = m["to"].astype(object).value_counts().index[0]
    assert {x.sid for x in c.messages.stream(to=to)} == set(m.loc[m["to"] == to, "sid"])
    calls = world.calls
    for status in ("completed", "no-answer", "busy"):
        got = c.calls.list(status=status, page_size=1000)
        assert len(got) == int((calls["status"] == status).sum())
        assert all(x.status == status for x in got)
    start = END - timedelta(days=3)
    got = list(c.calls.stream(start_time_after=start))
    assert len(got) == int((calls["start_time"] >= start.timestamp()).sum())


def test_create_message_and_call(server):
    c = client_for(server)
    m = c.messages.create(to="+447911123456", from_="+15005550006", body="Your code is 123456")
    assert m.sid.startswith("SM") and m.status == "queued" and m.num_segments == "1"
    assert c.messages(m.sid).fetch().sid == m.sid
    assert m.sid in {x.sid for x in c.messages.list(limit=5)}  # newest first
    mg = server.senders()["messaging_service_sids"][0]
    m2 = c.messages.create(to="+5511987654321", messaging_service_sid=mg, body="Olá — código 123456")
    assert m2.messaging_service_sid == mg and m2.num_segments == "1"
    call = c.calls.create(to="+447911123456", from_="+15005550006", twiml="<Response><Say>Hi</Say></Response>")
    assert call.sid.startswith("CA") and call.status == "queued"
    assert c.calls(call.sid).fetch().sid == call.sid


@pytest.mark.parametrize("to,from_,code", [
    ("+15005550001", "+15005550006", 21211),
    ("+15005550002", "+15005550006", 21612),
    ("+15005550003", "+15005550006", 21408),
    ("+15005550004", "+15005550006", 21610),
    ("+15005550009", "+15005550006", 21614),
    ("+447911123456", "+15005550001", 21212),
    ("+447911123456", "+15005550007", 21606),
    ("+447911123456", "+15005550008", 21611),
    ("not-a-number", "+15005550006", 21211),
])
def test_magic_numbers_raise_twilio_errors(server, to, from_, code):
    with pytest.raises(TwilioRestException) as e:
        client_for(server).messages.create(to=to, from_=from_, body="hi")
    assert e.value.code == code and e.value.status == 400


def test_magic_valid_to_is_delivered(server):
    c = client_for(server)
    clock = SimClock(datetime.now(UTC))
    with SandboxServer(server.world, clock=clock) as s:
        c = client_for(s)
        m = c.messages.create(to="+15005550006", from_="+15005550006", body="hi")
        clock.advance(3600)
        assert c.messages(m.sid).fetch().status == "delivered"


def test_call_errors(server):
    c = client_for(server)
    with pytest.raises(TwilioRestException) as e:
        c.calls.create(to="+15005550001", from_="+15005550006", url="http://example.com/twiml")
    assert e.value.code == 21217
    with pytest.raises(TwilioRestException) as e:
        c.calls.create(to="+447911123456", from_="+15005550006")
    assert e.value.code == 21205


def test_404_and_401(server):
    with pytest.raises(TwilioRestException) as e:
        client_for(server).messages("SM" + "a" * 32).fetch()
    assert (e.value.status, e.value.code) == (404, 20404)
    bad = client_for(server, token="f" * 32)
    with pytest.raises(TwilioRestException) as e:
        bad.messages("SM" + "a" * 32).fetch()
    assert (e.value.status, e.value.code) == (401, 20003)
    with pytest.raises(TwilioException) as e:  # the SDK's list raises the base class with the response
        bad.messages.list(limit=1)
    assert e.value.args[1].status_code == 401


def test_subaccounts(server, world):
    c = client_for(server)
    accounts = c.api.accounts.list()
    assert [a.sid for a in accounts] == world.account_sids
    sub = world.accounts[1]
    expected = int((world.messages["account_idx"] == 1).sum())
    # The parent's credentials work on the subaccount, and so do the subaccount's own.
    assert len(list(client_for(server, account_sid=sub["sid"]).messages.stream(page_size=1000))) == expected
    own = client_for(server, sid=sub["sid"], token=sub["auth_token"])
    assert len(list(own.messages.stream(page_size=1000))) == expected
    with pytest.raises(TwilioException):
        client_for(server, sid=sub["sid"], token=sub["auth_token"], account_sid=server.account_sid).messages.list()


def test_429_with_retry_after(world):
    with SandboxServer(world, faults=FaultConfig(rate_429=1.0, retry_after=7)) as s:
        with pytest.raises(TwilioRestException) as e:
            client_for(s).messages.create(to="+447911123456", from_="+15005550006", body="hi")
        assert (e.value.status, e.value.code) == (429, 20429)
        u = urlsplit(s.base_url)
        conn = http.client.HTTPConnection(u.hostname, u.port)
        conn.request("GET", f"/2010-04-01/Accounts/{s.account_sid}/Messages.json")
        resp = conn.getresponse()
        assert resp.status == 429 and resp.getheader("Retry-After") == "7"


def test_partial_faults_are_seeded_and_drop_closes_the_connection(world):
    def outcomes(faults):
        with SandboxServer(world, faults=faults) as s:
            c = client_for(s)
            out = []
            for _ in range(30):
                try:
                    c.messages.list(limit=1)
                    out.append(200)
                except TwilioException as e:
                    out.append(e.args[1].status_code)
            return out

    f = FaultConfig(rate_500=0.2, rate_503=0.2, seed=3)
    first = outcomes(f)
    assert first == outcomes(f)
    assert {200, 500, 503} <= set(first)
    with SandboxServer(world, faults=FaultConfig(drop_rate=1.0)) as s:
        u = urlsplit(s.base_url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        conn.request("GET", f"/2010-04-01/Accounts/{s.account_sid}/Messages.json")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
    with SandboxServer(world, faults=FaultConfig(slow_rate=1.0, slow_seconds=0.3)) as s:
        t = time.perf_counter()
        client_for(s).messages.list(limit=1)
        assert time.perf_counter() - t >= 0.3


def test_historic_status_lifecycle_with_injected_clock(world):
    m = main_messages(world)
    row = m[(m["final_at"] - m["date_sent"]) > 30].iloc[-1]
    clock = SimClock(datetime.fromtimestamp(int(row["date_sent"]) + 1, UTC))
    with SandboxServer(world, clock=clock) as s:
        c = client_for(s)
        first = c.messages(row["sid"]).fetch()
        assert first.status == "sent" and first.price is None
        # Later records are not visible yet.
        visible = list(c.messages.stream(page_size=1000))
        assert len(visible) == int((m["date_created"] <= clock.now()).sum())
        clock.set(datetime.fromtimestamp(int(row["final_at"]), UTC))
        later = c.messages(row["sid"]).fetch()
        assert later.status == row["status"] and later.price is not None
        assert later.date_updated > first.date_updated


class _Catcher(BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({k: v[0] for k, v in parse_qs(body.decode()).items()})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def catcher():
    handler = type("C", (_Catcher,), {"received": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/status", handler.received
    httpd.shutdown()
    httpd.server_close()


def _wait_for(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_created_message_lifecycle_and_status_callbacks(world, catcher):
    url, received = catcher
    clock = SimClock(datetime(2026, 6, 2, 12, tzinfo=UTC))
    with SandboxServer(world, clock=clock) as s:
        c = client_for(s)
        msg = c.messages.create(to="+5511987654321", from_="+15005550006", body="hi", status_callback=url)
        assert c.messages(msg.sid).fetch().status == "queued"
        assert received == []
        clock.advance(1.5)
        assert c.messages(msg.sid).fetch().status == "sent"
        assert _wait_for(lambda: len(received) == 1)
        assert received[0]["MessageStatus"] == "sent" and received[0]["MessageSid"] == msg.sid
        assert received[0]["AccountSid"] == s.account_sid and received[0]["SmsStatus"] == "sent"
        clock.advance(3 * 3600)
        final = c.messages(msg.sid).fetch()
        assert final.status in ("delivered", "undelivered") and final.price.startswith("-")
        assert _wait_for(lambda: len(received) == 2)
        assert received[1]["MessageStatus"] == final.status
        assert ("ErrorCode" in received[1]) == (final.status == "undelivered")

        call = c.calls.create(to="+5511987654321", from_="+15005550006", url="http://example.com/t",
                              status_callback=url, status_callback_event=["initiated", "ringing", "answered",
                                                                          "completed"])
        assert c.calls(call.sid).fetch().status == "queued"
        clock.advance(1.5)
        assert c.calls(call.sid).fetch().status == "ringing"
        clock.advance(3600)
        done = c.calls(call.sid).fetch()
        assert done.status in ("completed", "busy", "no-answer")
        assert _wait_for(lambda: any(r.get("CallStatus") == done.status for r in received))
        call_events = [r["CallStatus"] for r in received if "CallSid" in r]
        assert call_events[0] == "queued" and call_events[-1] == done.status
        if done.status == "completed":
            assert "in-progress" in call_events
            assert received[-1]["CallDuration"] == done.duration


def test_callbacks_to_a_dead_url_do_not_break_the_server(world):
    clock = SimClock(datetime(2026, 6, 2, 12, tzinfo=UTC))
    with SandboxServer(world, clock=clock) as s:
        c = client_for(s)
        c.messages.create(to="+5511987654321", from_="+15005550006", body="hi",
                          status_callback="http://127.0.0.1:9/nothing")
        clock.advance(3600)

        def tried_and_gave_up() -> bool:
            clock.advance(1)  # retries come half a server-clock second and a second after a failure
            return s.callback_stats["given_up"] == 2  # 'sent' and the final status, three tries each

        assert _wait_for(tried_and_gave_up)
        assert s.callback_stats == {"posted": 0, "given_up": 2, "pending": 0}
        assert c.messages.list(limit=1)


def test_slow_responses_do_not_block_each_other(world):
    # Each answer is held for a minute: four requests in flight at once prove they are served
    # concurrently (progress, not a stopwatch); stopping the server releases them.
    with SandboxServer(world, faults=FaultConfig(slow_rate=1.0, slow_seconds=60)) as s:
        errors: list = []

        def one():
            try:
                client_for(s).messages.list(limit=1)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for th in threads:
            th.start()
        assert _wait_for(lambda: s.in_flight == 4, timeout=30)
    for th in threads:
        th.join(30)
    assert not errors and not any(th.is_alive() for th in threads)
