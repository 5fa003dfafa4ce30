"""The sender's building blocks: ledger, send log, token bucket, Retry-After."""

from __future__ import annotations

import itertools
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from twilio.http import HttpClient
from twilio.http.response import Response

from switchboard.core.twilio import SENDER_RETRIES, RetryingHttpClient
from switchboard.sender.ledger import Ledger, LedgerBusy
from switchboard.sender.ratelimit import TokenBucket
from switchboard.sender.sendlog import SendLog, SendLogRecord, iso_z
from switchboard.sender.transport import credentials_from_env, retry_after_seconds


def _intent(ledger: Ledger, key: str = "c:u1:sms") -> None:
    ledger.record_intent(
        key=key,
        campaign_id="c",
        user_id=key.split(":")[1],
        step="sms",
        event_id=f"ev-{key}",
        to_number="+15005550010",
        sender="+15005550006",
        body_hashes="h",
        variant="a",
        fallback_of=None,
    )


def test_ledger_states_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "ledger" / "c.sqlite"
    with Ledger.open(path) as ledger:
        _intent(ledger, "c:u1:sms")
        _intent(ledger, "c:u2:sms")
        ledger.record_sent(
            "c:u1:sms", sid="SM1", status="queued", created_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
        _intent(ledger, "c:u1:sms")  # an intent never overwrites an outcome
    with Ledger.open(path) as ledger:
        assert ledger.get("c:u1:sms").state == "sent"  # type: ignore[union-attr]
        assert ledger.get("c:u1:sms").provider_sid == "SM1"  # type: ignore[union-attr]
        assert [r.key for r in ledger.rows(state="intent")] == ["c:u2:sms"]
        _intent(ledger, "c:u2:sms")
        assert ledger.get("c:u2:sms").attempts == 2  # type: ignore[union-attr]
        assert ledger.known_sids() == {"SM1"}
        assert ledger.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_second_sender_on_the_same_campaign_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with Ledger.open(path):
        with pytest.raises(LedgerBusy, match="already running"):
            Ledger.open(path)
        reader = Ledger.open_readonly(path)  # progress views still read
        assert reader.rows() == []
        reader.close()
    Ledger.open(path).close()  # released on close


def _record(event_id: str) -> SendLogRecord:
    return SendLogRecord(
        event_id=event_id,
        sent_at=iso_z(datetime(2026, 11, 25, 15, 0, 1, 234567, tzinfo=UTC)),
        channel="sms",
        purpose="p",
        template_id="t",
        experiment_id="e",
        variant="a",
        campaign_id="c",
        user_id="u",
        country="US",
        locale="en",
        provider_sid="SM1",
        fallback_of=None,
    )


def test_send_log_appends_once_per_event_and_repairs_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "send_logs" / "sends-campaign-c.jsonl"
    log = SendLog(path)
    log.append(_record("e1"))
    log.append(_record("e1"))
    assert path.read_text().count("\n") == 1
    with open(path, "a") as f:  # a crash in the middle of a write
        f.write('{"event_id":"e2","sent_at":"2026-')
    log = SendLog(path)
    assert "e1" in log and "e2" not in log
    log.append(_record("e2"))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == ["e1", "e2"]
    assert json.loads(lines[0])["sent_at"] == "2026-11-25T15:00:01.234Z"


def test_token_bucket_spaces_sends() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(4.0, clock=lambda: now[0], sleep=sleep)
    times = []
    for _ in range(9):
        bucket.acquire()
        times.append(now[0])
    assert times[0] == 0.0
    assert all(b - a == pytest.approx(0.25) for a, b in itertools.pairwise(times))


def test_retry_after_header_forms() -> None:
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "1.5"}) == 1.5
    http_date = (now + timedelta(seconds=7)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds({"Retry-After": http_date}, now=now) == pytest.approx(7)
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


class _Scripted(HttpClient):
    def __init__(self, responses: list[Response]):
        super().__init__(logging.getLogger("test"), False)
        self.responses = responses
        self.calls = 0

    def request(self, *args: object, **kwargs: object) -> Response:
        self.calls += 1
        return self.responses.pop(0)


def test_retry_after_client_waits_and_repeats() -> None:
    waits: list[float] = []
    inner = _Scripted(
        [Response(429, "{}", {"Retry-After": "2"}), Response(429, "{}", {}), Response(201, "{}")]
    )
    client = RetryingHttpClient(inner, policy=SENDER_RETRIES, sleep=waits.append, base_delay=0.5)
    assert client.request("POST", "http://x").status_code == 201
    assert waits == [2.0, 1.0]  # the header, then exponential backoff without one
    assert client.retries == 2 and inner.calls == 3


def test_retry_after_client_gives_up_after_max_retries() -> None:
    inner = _Scripted([Response(429, "{}", {"Retry-After": "0"}) for _ in range(3)])
    client = RetryingHttpClient(inner, policy=SENDER_RETRIES, sleep=lambda s: None, max_retries=2)
    assert client.request("POST", "http://x").status_code == 429
    assert inner.calls == 3


def test_credentials_from_env_then_secrets_toml_and_never_in_repr(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        '[twilio]\naccount_sid = "AC0123456789abcdef0123456789abcdef"\nauth_token = "s3cr3t-token"\n'
    )
    from_file = credentials_from_env({}, secrets_file=secrets)
    assert from_file.account_sid.startswith("AC0123") and from_file.secret == "s3cr3t-token"
    env = {"TWILIO_ACCOUNT_SID": "AC" + "f" * 32, "TWILIO_AUTH_TOKEN": "env-token"}
    assert credentials_from_env(env, secrets_file=secrets).secret == "env-token"  # the environment wins
    for shown in (str(from_file), repr(from_file)):
        assert "s3cr3t-token" not in shown and "0123456789abcdef0123" not in shown
