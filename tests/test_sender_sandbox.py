"""The sender against the real sandbox server through the real twilio SDK."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from switchboard.core.error_catalog import describe
from switchboard.sandbox.server import FaultConfig, SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate
from switchboard.sender import api
from switchboard.sender.ledger import Ledger, ledger_path
from switchboard.sender.planning import planned_sends
from switchboard.sender.runner import RunOptions, voice_twiml
from switchboard.sender.sendlog import SEND_LOG_FIELDS, send_log_path
from switchboard.sender.transport import Credentials, make_client

MAGIC_ERRORS = {"+15005550001": 21211, "+15005550004": 21610, "+15005550009": 21614}


def sandbox_number(i: int) -> str:
    """Valid US numbers the simulated world never uses (its own are drawn from real area codes)."""
    return f"+1500555{100 + i:04d}"


def write_campaign(
    directory: Path,
    *,
    campaign_id: str,
    numbers: list[str],
    rate_limit: float = 50.0,
    fallback_seconds: float | None = None,
    extra_allowed: list[str] = (),  # type: ignore[assignment]
    locales: list[str] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    locales = locales or ["en-US", "es-MX", "pt-BR", "fr-FR"]
    rows = ["number,user_id,locale"] + [
        f"{n},user-{i:03d},{locales[i % len(locales)]}" for i, n in enumerate(numbers)
    ]
    (directory / "recipients.csv").write_text("\n".join(rows) + "\n")
    (directory / "allow.txt").write_text("\n".join([*numbers, *extra_allowed]) + "\n")
    fallback = f"\n[fallback]\nafter_seconds = {fallback_seconds}\n" if fallback_seconds is not None else ""
    path = directory / "campaign.toml"
    path.write_text(f'''
id = "{campaign_id}"
name = "Sandbox rehearsal"
purpose = "password_reset"
experiment_id = "exp-{campaign_id}"
recipients = "recipients.csv"
allow_list = "allow.txt"
from = "+15005550006"
rate_limit = {rate_limit}
max_size = 100

[[variants]]
name = "control"
weight = 1
template_id = "pr_standard"
bodies = {{ en = "Your code is 123456", es = "Tu código es 123456", pt-BR = "Seu código é 123456" }}

[[variants]]
name = "short"
weight = 1
template_id = "pr_short"
bodies = {{ en = "Code: 123456", es = "Código: 123456" }}
{fallback}''')
    return path


@pytest.fixture(scope="module")
def world() -> Any:
    return generate(Scenario(messages=300, calls=30, days=2))


@pytest.fixture
def sandbox(world: Any) -> Iterator[SandboxServer]:
    with SandboxServer(world, port=0) as server:
        yield server


def sdk_client(server: SandboxServer, **kwargs: Any) -> Client:
    return make_client(Credentials(server.account_sid, server.auth_token, base_url=server.base_url), **kwargs)


def messages_to(client: Client, number: str) -> list[Any]:
    return list(client.messages.list(to=number))


def read_send_log(data_dir: Path, campaign_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in send_log_path(data_dir, campaign_id).read_text().splitlines()]


# --- sending, errors, idempotent re-run -------------------------------------------------------------


def test_campaign_sends_once_records_errors_by_name_and_logs_every_attempt(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    numbers = [sandbox_number(i) for i in range(6)] + list(MAGIC_ERRORS)
    campaign = api.load_campaign(write_campaign(tmp_path / "c", campaign_id="basic", numbers=numbers))
    client = sdk_client(sandbox)
    result = api.run_campaign(campaign, client, data_dir=tmp_path / "data")

    frame = result.to_frame().set_index("user_id")
    assert result.sent == 6 and result.failed == 3
    for number, code in MAGIC_ERRORS.items():
        row = frame[frame["number_masked"].str.endswith(number[-2:]) & (frame["state"] == "failed")].iloc[0]
        assert row["error_code"] == code
        assert row["error_name"] == describe(code).name  # the catalogue's official name
    assert result.failed_by_error == {describe(c).name: 1 for c in MAGIC_ERRORS.values()}

    for number in numbers:
        expected = 0 if number in MAGIC_ERRORS else 1
        assert len(messages_to(client, number)) == expected, number

    records = read_send_log(tmp_path / "data", "basic")
    assert len(records) == len(numbers) and all(tuple(r) == SEND_LOG_FIELDS for r in records)
    assert {r["user_id"] for r in records} == {r.user_id for r in campaign.recipients}
    plans = {p.recipient.user_id: p for p in planned_sends(campaign)}
    for r in records:
        assert r["campaign_id"] == "basic" and r["experiment_id"] == "exp-basic" and r["channel"] == "sms"
        assert r["variant"] == plans[r["user_id"]].variant.name
        assert r["sent_at"].endswith("Z") and r["country"] == "US"
        assert (r["provider_sid"] is None) == (plans[r["user_id"]].recipient.number in MAGIC_ERRORS)
    sids = {r["provider_sid"] for r in records if r["provider_sid"]}
    assert sids == {m.sid for n in numbers for m in messages_to(client, n)}

    # The ledger holds the errors too.
    with Ledger.open(ledger_path(tmp_path / "data", "basic")) as ledger:
        failed = {r.error_code: r.error_name for r in ledger.rows(state="failed")}
    assert failed == {c: describe(c).name for c in MAGIC_ERRORS.values()}

    # The progress view the dashboard shows: every send, numbers masked.
    progress = api.campaign_progress(tmp_path / "data", "basic")
    assert len(progress) == len(numbers) and set(progress["state"]) == {"sent", "failed"}
    assert not progress.astype(str).apply(lambda col: col.str.contains("+1500555", regex=False)).any().any()

    # Running the same campaign again sends nothing and changes nothing.
    again = api.run_campaign(campaign, client, data_dir=tmp_path / "data")
    assert all(o.resumed for o in again.outcomes) and again.sent == 6
    assert all(len(messages_to(client, n)) == (0 if n in MAGIC_ERRORS else 1) for n in numbers)
    assert len(read_send_log(tmp_path / "data", "basic")) == len(numbers)


class _PostTimes(HttpClient):
    """Records when each message create leaves the client."""

    def __init__(self) -> None:
        super().__init__(TwilioHttpClient().logger, False)
        self.inner = TwilioHttpClient()
        self.times: list[float] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        if method == "POST" and url.endswith("/Messages.json"):
            self.times.append(time.monotonic())
        return self.inner.request(method, url, **kwargs)


def test_rate_limit_is_honoured(sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The limiter releases creates at most 5 a second, and no create leaves before its release.

    Spacing is checked where the limiter decides it (the token bucket's releases), not at the socket: a
    busy machine may delay one request after its release and so shorten the gap to the next one on the
    wire, which says nothing about the limiter. The wire side checks that every create was released.
    """
    from switchboard.sender import ratelimit

    releases: list[float] = []
    acquire = ratelimit.TokenBucket.acquire

    def recording_acquire(self: ratelimit.TokenBucket) -> float:
        waited = acquire(self)
        releases.append(self.clock())
        return waited

    monkeypatch.setattr(ratelimit.TokenBucket, "acquire", recording_acquire)
    numbers = [sandbox_number(20 + i) for i in range(8)]
    campaign = api.load_campaign(
        write_campaign(tmp_path / "c", campaign_id="rate", numbers=numbers, rate_limit=5)
    )
    recorder = _PostTimes()
    client = Client(sandbox.account_sid, sandbox.auth_token, http_client=recorder)
    client.api.base_url = sandbox.base_url
    api.run_campaign(campaign, client, data_dir=tmp_path / "data")
    times = recorder.times
    assert len(times) == 8 and len(releases) == 8
    # 5 per second with a burst of 1: any k consecutive releases span at least k x 200 ms (1 ms for
    # float rounding of the bucket's arithmetic).
    for i, start in enumerate(releases):
        for j in range(i + 1, len(releases)):
            assert releases[j] - start >= (j - i) * 0.2 - 0.001, (i, j, [round(t - releases[0], 3) for t in releases])
    # Each create left the client after its own release and before the next one's (one release per send).
    for i, sent in enumerate(times):
        assert sent >= releases[i], (i, sent - releases[i])
        if i + 1 < len(releases):
            assert sent <= releases[i + 1], (i, sent, releases[i + 1])


def test_429s_are_waited_out_as_retry_after_says(world: Any, tmp_path: Path) -> None:
    faults = FaultConfig(rate_429=0.35, retry_after=2, seed=11)
    with SandboxServer(world, port=0, faults=faults) as server:
        waits: list[float] = []
        client = sdk_client(server, sleep=waits.append)  # record the waits instead of sleeping them
        numbers = [sandbox_number(40 + i) for i in range(10)]
        campaign = api.load_campaign(write_campaign(tmp_path / "c", campaign_id="r429", numbers=numbers))
        result = api.run_campaign(campaign, client, data_dir=tmp_path / "data")
        assert result.sent == 10 and result.failed == 0
        assert result.retried_429 == len(waits) > 0
        assert set(waits) == {2.0}  # exactly the Retry-After the server sent
        for n in numbers:
            assert len(messages_to(client, n)) == 1


def test_server_errors_and_dropped_connections_never_duplicate(world: Any, tmp_path: Path) -> None:
    faults = FaultConfig(rate_500=0.12, drop_rate=0.08, seed=5)
    with SandboxServer(world, port=0, faults=faults) as server:
        client = sdk_client(server, timeout=5)
        numbers = [sandbox_number(60 + i) for i in range(12)]
        campaign = api.load_campaign(write_campaign(tmp_path / "c", campaign_id="flaky", numbers=numbers))
        options = RunOptions(sleep=lambda s: None)
        result = api.run_campaign(campaign, client, data_dir=tmp_path / "data", options=options)
        assert result.sent == 12
    counts = Counter(m["to"] for m in server.messages.live)  # the server's own record of what it created
    assert all(counts[n] == 1 for n in numbers), counts
    assert len(read_send_log(tmp_path / "data", "flaky")) == 12


# --- voice fallback on the sandbox clock ------------------------------------------------------------


def test_voice_fallback_calls_when_sms_not_delivered_in_time(world: Any, tmp_path: Path) -> None:
    sim = SimClock(datetime.now(UTC).replace(microsecond=0), speed=0.0)  # moves only when the sender sleeps
    with SandboxServer(world, port=0, clock=sim) as server:
        client = sdk_client(server)
        numbers = [sandbox_number(80 + i) for i in range(12)] + ["+15005550009", "+15005550004"]
        campaign = api.load_campaign(
            write_campaign(tmp_path / "c", campaign_id="fb", numbers=numbers, fallback_seconds=6)
        )
        lock = threading.Lock()

        def sleep(seconds: float) -> None:
            with lock:
                sim.advance(seconds)

        options = RunOptions(
            clock=lambda: datetime.fromtimestamp(sim.now(), UTC),
            sleep=sleep,
            monotonic=sim.now,
            poll_interval=2.0,
        )
        result = api.run_campaign(campaign, client, data_dir=tmp_path / "data", options=options)

        sms = {o.user_id: o for o in result.outcomes if o.step == "sms"}
        calls = {o.user_id: o for o in result.outcomes if o.step == "voice"}
        by_number = {r.number: r.user_id for r in campaign.recipients}
        assert by_number["+15005550009"] in calls  # landline (21614): called right away
        assert by_number["+15005550004"] not in calls  # unsubscribed (21610): never called
        delivered = {u for u, o in sms.items() if o.status in ("delivered", "read")}
        late = {u for u, o in sms.items() if o.state == "sent" and u not in delivered}
        assert delivered and late, "the scenario should have both on-time and late deliveries"
        assert set(calls) == late | {by_number["+15005550009"]}
        for user, call in calls.items():
            assert call.state == "sent" and call.provider_sid.startswith("CA")
            assert call.fallback_of == sms[user].event_id
            number = next(n for n, u in by_number.items() if u == user)
            assert len(list(client.calls.list(to=number))) == 1

        records = read_send_log(tmp_path / "data", "fb")
        voice = [r for r in records if r["channel"] == "voice"]
        assert len(voice) == len(calls)
        sms_ids = {r["event_id"] for r in records if r["channel"] == "sms"}
        assert all(r["fallback_of"] in sms_ids for r in voice)


def test_voice_twiml_says_the_body_in_the_recipients_language(tmp_path: Path) -> None:
    campaign = api.load_campaign(
        write_campaign(
            tmp_path / "c",
            campaign_id="tw",
            numbers=[sandbox_number(1)],
            locales=["es-MX"],
            fallback_seconds=1,
        )
    )
    twiml = voice_twiml(planned_sends(campaign)[0])
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Say language="es-MX">')
    assert "123456</Say></Response>" in twiml


# --- recovery details -------------------------------------------------------------------------------


class _LoseCreateResponses(HttpClient):
    """Performs every request, but the first ``n`` message creates 'lose' their response (the
    request reached Twilio, the answer never came back): the worst case for duplicates."""

    def __init__(self, n: int, resource: str = "Messages") -> None:
        super().__init__(TwilioHttpClient().logger, False)
        self.inner = TwilioHttpClient()
        self.left = n
        self.resource = resource

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        response = self.inner.request(method, url, **kwargs)
        if method == "POST" and url.endswith(f"/{self.resource}.json") and self.left > 0:
            self.left -= 1
            import requests

            raise requests.ConnectionError("connection reset by peer (simulated, after the server answered)")
        return response


def test_a_lost_response_is_found_at_the_provider_not_resent(sandbox: SandboxServer, tmp_path: Path) -> None:
    numbers = [sandbox_number(500 + i) for i in range(4)]
    campaign = api.load_campaign(write_campaign(tmp_path / "c", campaign_id="lost", numbers=numbers))
    client = Client(sandbox.account_sid, sandbox.auth_token, http_client=_LoseCreateResponses(2))
    client.api.base_url = sandbox.base_url
    result = api.run_campaign(
        campaign, client, data_dir=tmp_path / "data", options=RunOptions(sleep=lambda s: None)
    )
    assert result.sent == 4 and sum(o.recovered for o in result.outcomes) == 2
    created = Counter(m["to"] for m in sandbox.messages.live)
    assert all(created[n] == 1 for n in numbers)


def test_a_lost_call_response_is_found_at_the_provider_not_called_twice(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    numbers = ["+15005550009", sandbox_number(510)]  # a landline (called at once) and a late SMS
    campaign = api.load_campaign(
        write_campaign(tmp_path / "c", campaign_id="lost-call", numbers=numbers, fallback_seconds=0)
    )
    client = Client(sandbox.account_sid, sandbox.auth_token, http_client=_LoseCreateResponses(2, "Calls"))
    client.api.base_url = sandbox.base_url
    result = api.run_campaign(
        campaign, client, data_dir=tmp_path / "data", options=RunOptions(sleep=lambda s: None)
    )
    calls = [o for o in result.outcomes if o.step == "voice"]
    assert len(calls) == 2 and all(o.recovered and o.provider_sid for o in calls)
    placed = Counter(c["to"] for c in sandbox.calls.live)
    assert all(placed[n] == 1 for n in numbers), placed


def test_another_campaigns_identical_message_is_not_mistaken_for_ours(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Campaign B died after its intent, before calling Twilio; campaign A had just sent the same
    body to the same test phone. B's recovery must not adopt A's message: B sends its own."""
    phone = sandbox_number(520)
    data_dir = tmp_path / "data"
    a = api.load_campaign(write_campaign(tmp_path / "a", campaign_id="camp-a", numbers=[phone]))
    b = api.load_campaign(write_campaign(tmp_path / "b", campaign_id="camp-b", numbers=[phone]))
    client = sdk_client(sandbox)
    api.run_campaign(a, client, data_dir=data_dir)
    plan_b = planned_sends(b)[0]
    assert plan_b.body == planned_sends(a)[0].body  # same salt-free body: the hard case
    with Ledger.open(ledger_path(data_dir, "camp-b")) as ledger:  # the state a crash leaves behind
        from switchboard.sender.runner import body_hashes

        ledger.record_intent(
            key=plan_b.key,
            campaign_id="camp-b",
            user_id=plan_b.recipient.user_id,
            step="sms",
            event_id=plan_b.event_id,
            to_number=phone,
            sender="+15005550006",
            body_hashes=body_hashes(plan_b.body),
            variant=plan_b.variant.name,
            fallback_of=None,
        )
    # The "crash" is simulated: B's intent was written by hand and no request of B's is in flight, so the
    # in-flight window (what the slow-provider tests are about) is set to zero here.
    result = api.run_campaign(b, client, data_dir=data_dir, options=RunOptions(inflight_window=timedelta(0)))
    assert result.sent == 1 and not result.outcomes[0].recovered
    assert len(messages_to(client, phone)) == 2  # one per campaign


def test_endless_429s_stop_the_run_and_the_next_run_resumes(world: Any, tmp_path: Path) -> None:
    numbers = [sandbox_number(540 + i) for i in range(3)]
    campaign = api.load_campaign(write_campaign(tmp_path / "c", campaign_id="r429-stop", numbers=numbers))
    data_dir = tmp_path / "data"
    with SandboxServer(world, port=0, faults=FaultConfig(rate_429=1.0, retry_after=1)) as server:
        client = sdk_client(server, sleep=lambda s: None)
        with pytest.raises(api.SendAborted, match="kept answering HTTP 429"):
            api.run_campaign(campaign, client, data_dir=data_dir, options=RunOptions(sleep=lambda s: None))
        assert not server.messages.live
    with Ledger.open(ledger_path(data_dir, "r429-stop")) as ledger:
        # Nobody is marked failed for Twilio's congestion, and no intent is left: every answer was 429, so
        # nothing can be in flight and the next run need not wait out an in-flight window.
        assert ledger.rows() == []
    with SandboxServer(world, port=0) as server:
        result = api.run_campaign(campaign, sdk_client(server), data_dir=data_dir)
        assert result.sent == 3
        assert Counter(m["to"] for m in server.messages.live) == Counter(numbers)
