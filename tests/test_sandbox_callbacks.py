"""Status callbacks are signed exactly as Twilio signs them: the twilio SDK's RequestValidator,
run by a real loopback HTTP receiver, accepts every callback the sandbox sends and rejects
tampered, re-addressed or wrongly keyed ones."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from switchboard.sandbox.api.callbacks import signature
from switchboard.sandbox.server import SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate

END = datetime(2026, 6, 1, tzinfo=UTC)
WAIT = 10.0  # seconds: an upper bound on a loopback POST, not a pacing guess


class Receiver:
    """A real HTTP endpoint on loopback recording each POST as a receiver would see it: the full
    URL (rebuilt from Host and the path), the form parameters and the headers. ``fail_first``
    answers 500 to that many requests first, so the sandbox retries."""

    def __init__(self, fail_first: int = 0):
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.fail_first = fail_first
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                status = 500 if len(receiver.answers) < receiver.fail_first else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.cond:
                    receiver.answers.append(status)
                    receiver.received.append({
                        "url": f"http://{self.headers['Host']}{self.path}",
                        "params": dict(parse_qsl(body, keep_blank_values=True)),
                        "headers": dict(self.headers.items()),
                    })
                    receiver.cond.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, n: int) -> list[dict[str, Any]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.received) >= n, WAIT), self.received
            return list(self.received)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(messages=500, calls=50, days=3, end=END))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def client_for(server: SandboxServer, sid: str, token: str) -> Client:
    c = Client(sid, token)
    c.api.base_url = server.base_url
    return c


def valid(token: str, cb: dict[str, Any], url: str | None = None, params: dict[str, str] | None = None) -> bool:
    return RequestValidator(token).validate(url or cb["url"], cb["params"] if params is None else params,
                                            cb["headers"]["X-Twilio-Signature"])


def test_message_callbacks_pass_the_sdk_validator_and_tampered_ones_fail(world, receiver):
    clock = SimClock(datetime(2026, 6, 2, 12, tzinfo=UTC))
    url = receiver.url + "/hooks/status?campaign=spring&n=1"  # the query string is signed too
    with SandboxServer(world, clock=clock) as s:
        c = client_for(s, s.account_sid, s.auth_token)
        c.messages.create(to="+5511987654321", from_="+15005550006", body="hi", status_callback=url)
        clock.advance(3 * 3600)
        got = receiver.wait_for(2)
        other_token = world.accounts[1]["auth_token"]
    assert got[0]["params"]["MessageStatus"] == "sent"
    for cb in got:
        assert cb["url"] == url
        assert valid(s.auth_token, cb)
        assert cb["headers"]["X-Twilio-Signature"] == RequestValidator(s.auth_token).compute_signature(
            url, cb["params"])
        assert not valid(s.auth_token, cb, params={**cb["params"], "MessageStatus": "delivered!"})
        assert not valid(s.auth_token, cb, params={**cb["params"], "Extra": "1"})
        assert not valid(s.auth_token, cb, url=url.replace("/hooks/status", "/hooks/other"))
        assert not valid(s.auth_token, cb, url=url.replace("n=1", "n=2"))
        assert not valid(other_token, cb)
    tokens = [cb["headers"]["I-Twilio-Idempotency-Token"] for cb in got]
    assert len(set(tokens)) == 2 and all(len(t) == 32 for t in tokens)


def test_a_subaccounts_callbacks_are_signed_with_its_own_token(world, receiver):
    sub = world.accounts[1]
    clock = SimClock(datetime(2026, 6, 2, 12, tzinfo=UTC))
    with SandboxServer(world, clock=clock) as s:
        c = client_for(s, sub["sid"], sub["auth_token"])
        frm = s.senders(sub["sid"])["from"][1]
        c.messages.create(to="+447911123456", from_=frm, body="hello", status_callback=receiver.url + "/s")
        clock.advance(3 * 3600)
        got = receiver.wait_for(2)
    for cb in got:
        assert cb["params"]["AccountSid"] == sub["sid"]
        assert valid(sub["auth_token"], cb)
        assert not valid(s.auth_token, cb)  # the parent's token does not make the subaccount's signature


def test_call_progress_callbacks_are_signed(world, receiver):
    clock = SimClock(datetime(2026, 6, 2, 12, tzinfo=UTC))
    with SandboxServer(world, clock=clock) as s:
        c = client_for(s, s.account_sid, s.auth_token)
        c.calls.create(to="+5511987654321", from_="+15005550006", url="http://example.com/t",
                       status_callback=receiver.url + "/calls", status_callback_event=["initiated", "completed"])
        clock.advance(3600)
        got = receiver.wait_for(2)
    assert got[0]["params"]["CallStatus"] == "queued"
    for cb in got:
        assert valid(s.auth_token, cb)
        assert not valid(s.auth_token, cb, params={**cb["params"], "CallDuration": "9999"})


def test_a_retry_carries_the_same_signature_and_idempotency_token(world):
    receiver = Receiver(fail_first=1)
    clock = SimClock(datetime(2026, 6, 2, 12, tzinfo=UTC))
    try:
        with SandboxServer(world, clock=clock) as s:
            c = client_for(s, s.account_sid, s.auth_token)
            c.messages.create(to="+5511987654321", from_="+15005550006", body="hi",
                              status_callback=receiver.url + "/s")
            clock.advance(1.5)  # 'sent' is due; the receiver answers 500
            receiver.wait_for(1)
            clock.advance(1)  # the retry is due half a (server) second after a failure
            first, retry = receiver.wait_for(2)
    finally:
        receiver.close()
    assert receiver.answers[:2] == [500, 204]
    assert s.callback_stats["posted"] >= 1 and s.callback_stats["given_up"] == 0
    assert first["params"] == retry["params"] and first["params"]["MessageStatus"] == "sent"
    for name in ("X-Twilio-Signature", "I-Twilio-Idempotency-Token"):
        assert first["headers"][name] == retry["headers"][name]
    assert valid(s.auth_token, retry)


def test_signature_matches_the_sdk_on_awkward_values():
    # Non-ASCII, reserved characters, empty values and keys that sort differently by case.
    params = {"Body": "Olá — código 123 & más=1", "a": "", "B": "x y+z", "To": "+5511987654321", "b": "%20"}
    url = "https://example.com:8443/hook?x=1&y=%C3%A9"
    for token in ("12345", "ü-token"):
        assert signature(token, url, params) == RequestValidator(token).compute_signature(url, params)
