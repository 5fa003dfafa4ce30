"""Exactly once when the provider is slower than the client's timeout (issue 13).

The sandbox's slow fault holds a request for ``slow_seconds`` and only then acts on it, so a
create that outlives the HTTP timeout is still inside the provider when the client gives up.
The sender must not look for it (and send again) during that in-flight window, only after.

The runner waits out the window with ``RunOptions.sleep``; here that wait is tied to progress
instead of the clock: it returns once the sandbox has finished every create the client sent
(counted on both sides), which is what the window stands for. A runner that looks before its
wait (the old behaviour) sends twice, whatever the wait does.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from switchboard.sandbox.server import FaultConfig, SandboxServer
from switchboard.sandbox.world import Scenario, generate
from switchboard.sender import api
from switchboard.sender.ledger import Ledger, ledger_path
from switchboard.sender.runner import RunOptions
from switchboard.sender.sendlog import send_log_path
from tests.test_sender_sandbox import sandbox_number, write_campaign

TIMEOUT = 0.5  # the client's HTTP timeout, seconds
WINDOW = timedelta(seconds=30)  # the sender's in-flight window: far beyond every latency below


class _Progress:
    """Creates sent by the client and creates the sandbox has finished, with a wait for them to match."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.sent = 0
        self.finished = 0

    def wait_settled(self, seconds: float) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.finished >= self.sent, timeout=60), "sandbox never finished"


class _CountingSandbox(SandboxServer):
    progress: _Progress

    def create_message(self, ai: int, form: dict[str, str]) -> dict[str, Any]:
        try:
            return super().create_message(ai, form)
        finally:
            with self.progress.cond:
                self.progress.finished += 1
                self.progress.cond.notify_all()


class _CountingHttp(HttpClient):
    """The SDK's own HTTP client with a short timeout, counting message creates as they leave."""

    def __init__(self, progress: _Progress) -> None:
        super().__init__(TwilioHttpClient().logger, False, timeout=TIMEOUT)
        self.inner = TwilioHttpClient(timeout=TIMEOUT)
        self.progress = progress

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        if method == "POST" and url.endswith("/Messages.json"):
            with self.progress.cond:
                self.progress.sent += 1
        kwargs["timeout"] = TIMEOUT
        return self.inner.request(method, url, **kwargs)


@pytest.fixture(scope="module")
def world() -> Any:
    return generate(Scenario(messages=200, calls=20, days=2))


@pytest.mark.parametrize("slow_seconds", [0.3, 0.5, 0.6, 1.0, 2.0])  # around and beyond the timeout
def test_a_create_slower_than_the_timeout_is_sent_exactly_once(
    world: Any, tmp_path: Path, slow_seconds: float
) -> None:
    progress = _Progress()
    _CountingSandbox.progress = progress
    faults = FaultConfig(slow_rate=0.5, slow_seconds=slow_seconds, seed=3)
    numbers = [sandbox_number(700 + i) for i in range(8)]
    campaign = api.load_campaign(write_campaign(tmp_path / "c", campaign_id="slow", numbers=numbers))
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        progress.wait_settled(seconds)

    options = RunOptions(sleep=sleep, inflight_window=WINDOW)
    with _CountingSandbox(world, port=0, faults=faults) as server:
        client = Client(server.account_sid, server.auth_token, http_client=_CountingHttp(progress))
        client.api.base_url = server.base_url
        result = None
        for _run in range(6):  # a look that itself timed out stops the run; running again resumes it
            try:
                result = api.run_campaign(campaign, client, data_dir=tmp_path / "data", options=options)
                break
            except api.SendAborted:
                continue
        assert result is not None, "the campaign never finished"
        progress.wait_settled(0)
        created = Counter(m["to"] for m in server.messages.live)
        sids = {m["sid"] for m in server.messages.live if m["to"] in numbers}

    assert {n: created[n] for n in numbers} == {n: 1 for n in numbers}  # exactly one SMS each
    if slow_seconds > TIMEOUT:
        assert progress.sent > len(numbers) or any(o.recovered for o in result.outcomes), \
            "no create outlived the timeout: the scenario did not test anything"
        assert any(w > TIMEOUT for w in waits), "the sender never waited out an in-flight window"
    # The ledger, the send log and the summary say the same as the provider.
    with Ledger.open(ledger_path(tmp_path / "data", "slow")) as ledger:
        rows = ledger.rows()
    assert {r.provider_sid for r in rows} == sids and all(r.state == "sent" and r.logged for r in rows)
    records = [json.loads(x) for x in send_log_path(tmp_path / "data", "slow").read_text().splitlines()]
    assert len(records) == len(numbers) and {r["provider_sid"] for r in records} == sids
    assert result.summary()["sent"] == len(numbers) == result.sent


def test_a_restart_waits_out_the_in_flight_window_before_asking_twilio(world: Any, tmp_path: Path) -> None:
    """A run that died right after its intent may have left a create inside the provider: the next run
    asks Twilio about it only after the intent's window (and then finds or sends it, once)."""
    from datetime import UTC, datetime

    from switchboard.sender.planning import planned_sends
    from switchboard.sender.runner import body_hashes

    numbers = [sandbox_number(720 + i) for i in range(3)]
    campaign = api.load_campaign(write_campaign(tmp_path / "c", campaign_id="restart", numbers=numbers))
    plan = planned_sends(campaign)[0]
    with Ledger.open(ledger_path(tmp_path / "data", "restart")) as ledger:  # what the dead run left
        ledger.record_intent(
            key=plan.key, campaign_id=campaign.id, user_id=plan.recipient.user_id, step="sms",
            event_id=plan.event_id, to_number=plan.recipient.number, sender=campaign.sender,
            body_hashes=body_hashes(plan.body), variant=plan.variant.name, fallback_of=None,
            at=datetime.now(UTC),
        )
    with SandboxServer(world, port=0) as server:
        sleeps: list[tuple[float, int]] = []  # (seconds asked, requests the sandbox had served by then)
        client = Client(server.account_sid, server.auth_token)
        client.api.base_url = server.base_url
        options = RunOptions(sleep=lambda s: sleeps.append((s, server.request_count)), inflight_window=WINDOW)
        result = api.run_campaign(campaign, client, data_dir=tmp_path / "data", options=options)
        created = Counter(m["to"] for m in server.messages.live)
    first_wait, requests_before = sleeps[0]
    assert first_wait > WINDOW.total_seconds() - 5 and requests_before == 0
    assert {n: created[n] for n in numbers} == {n: 1 for n in numbers}
    assert result.sent == len(numbers)
