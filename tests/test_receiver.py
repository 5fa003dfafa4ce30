"""`switchboard listen` over real HTTP on loopback: signatures (twilio SDK), callbacks, Event Streams batches.

One receiver process serves the module; every test uses its own message/call sids and reads the spool back
with the reader API (``iter_events``), so tests do not depend on each other's records. A 2xx answer means
the event is fsynced, so the spool is read right after the answer, with no waiting.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from switchboard.ingest.receiver import ReadStats, iter_events, latest_status
from switchboard.ingest.receiver.spool import iter_records
from tests.receiver_util import Receiver, message_event, signed_batch, signed_callback

TOKEN = "test-auth-token-0123456789abcdef"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    spool = tmp_path_factory.mktemp("receiver") / "spool"
    with Receiver(spool, TOKEN) as server:
        server.spool = spool
        yield server


def _sid(prefix: str = "SM") -> str:
    return prefix + uuid.uuid4().hex


def _events_for(spool: Path, sid: str) -> list:
    return [e for e in iter_events(spool) if e.sid == sid]


def _records_count(spool: Path) -> int:
    return sum(1 for _ in iter_records(spool))


def _callback(sid: str, status: str = "delivered", **more: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
            "AccountSid": "AC" + "1" * 32, "From": "+15005550006", "To": "+6281234567890",
            "ApiVersion": "2010-04-01", "ErrorCode": "", **more}


def _post_callback(receiver, params: dict, *, sign_url: str | None = None, token: str = TOKEN,
                   signature: str | None = None, drop_signature: bool = False) -> requests.Response:
    url = f"{receiver.base}/twilio/status"
    body, headers = signed_callback(sign_url or url, params, token)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    if drop_signature:
        del headers["X-Twilio-Signature"]
    return requests.post(url, data=body, headers=headers, timeout=30)


# --- status callbacks: signatures --------------------------------------------------------------------
def test_good_signature_is_stored_normalised_without_body(receiver):
    sid = _sid()
    response = _post_callback(receiver, _callback(sid, "undelivered", ErrorCode="30007", Body="secret text"))
    assert response.status_code == 204
    [event] = _events_for(receiver.spool, sid)
    assert (event.source, event.resource, event.status, event.error_code) == ("callback", "message",
                                                                             "undelivered", 30007)
    assert event.account_sid == "AC" + "1" * 32 and event.position is not None
    assert b"secret text" not in b"".join(p.read_bytes() for p in receiver.spool.glob("seg-*.jsonl"))


def test_call_callback_keeps_twilio_timestamp(receiver):
    sid = _sid("CA")
    params = {"CallSid": sid, "CallStatus": "completed", "AccountSid": "AC" + "1" * 32, "CallDuration": "42",
              "Timestamp": "Fri, 04 Dec 2026 10:00:00 +0000", "SequenceNumber": "3"}
    assert _post_callback(receiver, params).status_code == 204
    [event] = _events_for(receiver.spool, sid)
    assert (event.resource, event.status, event.extra["duration"]) == ("call", "completed", "42")
    assert event.timestamp.isoformat() == "2026-12-04T10:00:00+00:00"


def test_callback_url_query_is_signed_and_kept(receiver):
    sid = _sid()
    url = f"{receiver.base}/twilio/status?campaign=spring&attempt=2"
    body, headers = signed_callback(url, _callback(sid), TOKEN)
    assert requests.post(url, data=body, headers=headers, timeout=30).status_code == 204
    [event] = _events_for(receiver.spool, sid)
    assert event.extra["query"] == "campaign=spring&attempt=2"
    # the same signature without the query string it covered is refused
    bare = requests.post(f"{receiver.base}/twilio/status", data=body, headers=headers, timeout=30)
    assert bare.status_code == 403


@pytest.mark.parametrize("case", ["bad", "missing", "wrong_url", "wrong_token", "tampered"])
def test_bad_signatures_get_403_and_store_nothing(receiver, case):
    sid = _sid()
    before = _records_count(receiver.spool)
    params = _callback(sid)
    if case == "bad":
        response = _post_callback(receiver, params, signature="bm90IGEgc2lnbmF0dXJl")
    elif case == "missing":
        response = _post_callback(receiver, params, drop_signature=True)
    elif case == "wrong_url":  # signed for another host: what a misconfigured proxy/public URL looks like
        response = _post_callback(receiver, params, sign_url="https://hooks.example.com/twilio/status")
    elif case == "wrong_token":
        response = _post_callback(receiver, params, token="another-accounts-token")
    else:  # a valid signature over different parameters: the status was changed in transit
        url = f"{receiver.base}/twilio/status"
        _, headers = signed_callback(url, params, TOKEN)
        forged = dict(params, MessageStatus="delivered", ErrorCode="30003")
        response = requests.post(url, data=forged, headers=headers, timeout=30)
    assert response.status_code == 403
    assert _records_count(receiver.spool) == before and _events_for(receiver.spool, sid) == []


def test_replayed_callback_is_acknowledged_but_stored_once(receiver):
    sid = _sid()
    params = _callback(sid, "delivered")
    first = _post_callback(receiver, params)
    replays = [_post_callback(receiver, params) for _ in range(3)]
    assert first.status_code == 204 and all(r.status_code == 204 for r in replays)
    assert len(_events_for(receiver.spool, sid)) == 1
    assert sum(1 for rec, _ in iter_records(receiver.spool) if sid in json.dumps(rec)) == 1


def test_concurrent_replays_are_stored_once(receiver):
    sid = _sid()
    params = _callback(sid, "sent")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _post_callback(receiver, params).status_code, range(16)))
    assert answers == [204] * 16
    assert len(_events_for(receiver.spool, sid)) == 1


def test_signed_request_that_is_not_a_status_callback_gets_400(receiver):
    before = _records_count(receiver.spool)
    response = _post_callback(receiver, {"Foo": "bar", "AccountSid": "AC" + "1" * 32})
    assert response.status_code == 400 and "MessageSid" in response.text
    assert _records_count(receiver.spool) == before


def test_oversized_callback_gets_413(receiver):
    response = _post_callback(receiver, _callback(_sid(), Padding="x" * 100_000))
    assert response.status_code == 413


def test_public_url_is_what_signatures_are_checked_against(tmp_path):
    public = "https://hooks.example.com/switchboard"
    with Receiver(tmp_path / "spool", TOKEN, public) as server:
        sid_public, sid_local = _sid(), _sid()
        ok = _post_callback(server, _callback(sid_public), sign_url=f"{public}/twilio/status")
        local = _post_callback(server, _callback(sid_local))  # signed for the URL the server sees: refused
        assert (ok.status_code, local.status_code) == (204, 403)
        assert [e.sid for e in iter_events(tmp_path / "spool")] == [sid_public]


def test_spool_over_budget_answers_503_with_retry_after(tmp_path):
    # a budget smaller than one record: every append is refused at once, deterministically
    with Receiver(tmp_path / "spool", TOKEN, None, "--max-pending-mb", "0.0001") as server:
        response = _post_callback(server, _callback(_sid()))
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert requests.get(f"{server.base}/healthz", timeout=30).json()["busy"] == 1
    assert list(iter_events(tmp_path / "spool")) == []


# --- Event Streams -----------------------------------------------------------------------------------
def _post_batch(receiver, events: list[dict], *, token: str = TOKEN, tamper: bool = False,
                drop_hash: bool = False) -> requests.Response:
    url, body, headers = signed_batch(f"{receiver.base}/twilio/events", events, token)
    if tamper:
        body = body.replace(b"DELIVERED", b"FAILED")
    if drop_hash:
        url = url.split("?")[0]
    return requests.post(url, data=body, headers=headers, timeout=30)


def test_event_streams_batch_is_stored_normalised(receiver):
    sid = _sid()
    events = [message_event(f"EV{sid}a", sid, "sent", "2026-12-04T10:00:00.000Z"),
              message_event(f"EV{sid}b", sid, "undelivered", "2026-12-04T10:00:05.000Z", error_code=30003)]
    assert _post_batch(receiver, events).status_code == 200
    stored = _events_for(receiver.spool, sid)
    assert [(e.status, e.error_code, e.source) for e in stored] == [("sent", None, "event-stream"),
                                                                    ("undelivered", 30003, "event-stream")]
    assert stored[1].extra["mcc"] == "510" and stored[1].event_id == f"EV{sid}b"
    assert stored[1].event_type == "com.twilio.messaging.message.undelivered"
    assert b"must never be stored" not in b"".join(p.read_bytes() for p in receiver.spool.glob("seg-*.jsonl"))


def test_event_streams_duplicates_are_stored_once(receiver):
    sid = _sid()
    a = message_event(f"EV{sid}a", sid, "sent", "2026-12-04T10:00:00.000Z")
    b = message_event(f"EV{sid}b", sid, "delivered", "2026-12-04T10:00:03.000Z")
    c = message_event(f"EV{sid}c", sid, "read", "2026-12-04T10:00:09.000Z")
    answers = [_post_batch(receiver, [a, b]).status_code,
               _post_batch(receiver, [a, b]).status_code,          # Twilio's retry of the whole batch
               _post_batch(receiver, [b, c, c]).status_code]       # a retry overlapping a new batch
    assert answers == [200, 200, 200]
    assert sorted(e.event_id for e in _events_for(receiver.spool, sid)) == [a["id"], b["id"], c["id"]]


def test_event_streams_out_of_order_keeps_the_furthest_status(receiver):
    sid = _sid()
    delivered = message_event(f"EV{sid}d", sid, "delivered", "2026-12-04T10:00:04.000Z")
    sent = message_event(f"EV{sid}s", sid, "sent", "2026-12-04T10:00:01.000Z")
    queued = message_event(f"EV{sid}q", sid, "queued", "2026-12-04T10:00:00.000Z")
    assert _post_batch(receiver, [delivered, sent]).status_code == 200  # out of order inside a batch
    assert _post_batch(receiver, [queued]).status_code == 200           # and across batches
    stored = _events_for(receiver.spool, sid)
    assert [e.status for e in stored] == ["delivered", "sent", "queued"]  # as received
    assert latest_status(stored)[("message", sid)].status == "delivered"


@pytest.mark.parametrize("case", ["wrong_token", "tampered_body", "no_body_hash", "missing"])
def test_event_streams_bad_signatures_get_403(receiver, case):
    sid = _sid()
    before = _records_count(receiver.spool)
    event = [message_event(f"EV{sid}", sid, "delivered", "2026-12-04T10:00:04.000Z")]
    if case == "missing":
        url, body, headers = signed_batch(f"{receiver.base}/twilio/events", event, TOKEN)
        del headers["X-Twilio-Signature"]
        response = requests.post(url, data=body, headers=headers, timeout=30)
    else:
        response = _post_batch(receiver, event, token="another-accounts-token" if case == "wrong_token" else TOKEN,
                               tamper=case == "tampered_body", drop_hash=case == "no_body_hash")
    assert response.status_code == 403
    assert _records_count(receiver.spool) == before


def test_event_streams_signed_garbage_gets_400(receiver):
    url = f"{receiver.base}/twilio/events"
    for body in (b"not json", b'[{"type": "x"}]', b"[1, 2]"):
        full = f"{url}?bodySHA256={hashlib.sha256(body).hexdigest()}"
        from twilio.request_validator import RequestValidator

        signature = RequestValidator(TOKEN).compute_signature(full, {})
        response = requests.post(full, data=body, headers={"X-Twilio-Signature": signature}, timeout=30)
        assert response.status_code == 400, body


def test_other_event_types_are_kept_but_not_status_events(receiver):
    test_event = {"specversion": "1.0", "type": "com.twilio.eventstreams.test-event", "source": "Sink",
                  "id": "TEST" + uuid.uuid4().hex, "data": {"test_id": str(uuid.uuid4())}}
    assert _post_batch(receiver, [test_event]).status_code == 200
    stats = ReadStats()
    keys = [e.key for e in iter_events(receiver.spool, stats=stats)]
    assert f"es:{test_event['id']}" not in keys
    assert stats.ignored.get("com.twilio.eventstreams.test-event", 0) >= 1


def test_healthz_counts(receiver):
    before = requests.get(f"{receiver.base}/healthz", timeout=30).json()
    assert _post_callback(receiver, _callback(_sid())).status_code == 204
    assert _post_callback(receiver, _callback(_sid()), token="nope").status_code == 403
    after = requests.get(f"{receiver.base}/healthz", timeout=30).json()
    assert after["status"] == "ok" and after["pending_bytes"] == 0
    assert after["accepted"] == before["accepted"] + 1
    assert after["rejected_signature"] == before["rejected_signature"] + 1


# --- the command line -------------------------------------------------------------------------------
@pytest.mark.parametrize("env, args, message", [
    ({}, [], "TWILIO_AUTH_TOKEN is not set"),
    ({"TWILIO_AUTH_TOKEN": TOKEN}, ["--public-url", "hooks.example.com"], "must start with http"),
    ({"TWILIO_AUTH_TOKEN": TOKEN}, ["--spool", "/proc/no-spool-here"], "cannot write the spool folder"),
])
def test_listen_refuses_bad_configuration_in_one_line(tmp_path, env, args, message):
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("TWILIO_AUTH_TOKEN", "SWITCHBOARD_PUBLIC_URL")}
    done = subprocess.run([sys.executable, "-m", "switchboard.ingest.receiver.cli", "--port", "0", "--spool",
                           str(tmp_path / "spool"), *args], env={**base, **env}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_listen_is_a_switchboard_subcommand_whose_help_explains_the_public_url():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "switchboard.cli", "listen", "--help"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and "--public-url" in done.stdout and "reverse proxy" in done.stdout


def test_event_stream_batches_in_progress_are_bounded(receiver):
    """32 batches whose bodies are still arriving hold every slot: the next one gets 503 + Retry-After at
    once, and a slot frees as soon as a held batch completes."""
    import socket

    from switchboard.ingest.receiver.app import MAX_CONCURRENT_BATCHES

    url, body, headers = signed_batch(f"{receiver.base}/twilio/events",
                                      [message_event("EV" + uuid.uuid4().hex, _sid(), "sent",
                                                     "2026-12-04T10:00:00.000Z")], TOKEN)
    path = url.split(receiver.base, 1)[1]
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{receiver.port}\r\nContent-Type: application/json\r\n"
            f"X-Twilio-Signature: {headers['X-Twilio-Signature']}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    held = []
    try:
        for _ in range(MAX_CONCURRENT_BATCHES):
            conn = socket.create_connection(("127.0.0.1", receiver.port))
            conn.sendall(head + body[:10])  # headers and a first chunk: the handler waits for the rest
            held.append(conn)
        while requests.get(f"{receiver.base}/healthz", timeout=30).json()["batches_in_progress"] < len(held):
            pass  # progress-tied wait: until the server has taken up every held batch
        refused = requests.post(url, data=body, headers=headers, timeout=30)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        held[0].sendall(body[10:])
        assert held[0].recv(65536).startswith(b"HTTP/1.1 200")
        assert requests.post(url, data=body, headers=headers, timeout=30).status_code == 200  # a duplicate now
    finally:
        for conn in held:
            conn.close()


def test_extra_tokens_accept_subaccount_signatures(tmp_path, monkeypatch):
    sub_token = "subaccount-token-0123456789abcdef"
    monkeypatch.setenv("SWITCHBOARD_LISTEN_EXTRA_TOKENS", f" {sub_token} ,")
    with Receiver(tmp_path / "spool", TOKEN) as server:
        sid_main, sid_sub, sid_other = _sid(), _sid(), _sid()
        answers = [_post_callback(server, _callback(sid_main)).status_code,
                   _post_callback(server, _callback(sid_sub), token=sub_token).status_code,
                   _post_callback(server, _callback(sid_other), token="someone-elses-token").status_code]
        event = [message_event(f"EV{sid_sub}", sid_sub, "delivered", "2026-12-04T10:00:04.000Z")]
        batch = _post_batch(server, event, token=sub_token).status_code
    assert answers == [204, 204, 403] and batch == 200
    stored = sorted((e.sid, e.source) for e in iter_events(tmp_path / "spool"))
    assert stored == sorted([(sid_main, "callback"), (sid_sub, "callback"), (sid_sub, "event-stream")])
