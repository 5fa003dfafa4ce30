"""The point of the sender: after ``switchboard ingest`` the campaign is in the warehouse like any traffic."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from switchboard.core.settings import Settings
from switchboard.ingest.pipeline import run_ingest
from switchboard.sandbox.server import SandboxServer
from switchboard.sandbox.world import Scenario, generate
from switchboard.sender import api
from switchboard.sender.sendlog import send_log_path
from tests.test_sender_sandbox import sandbox_number, sdk_client, write_campaign


@pytest.mark.slow
def test_campaign_appears_in_the_warehouse_after_ingest(tmp_path: Path) -> None:
    numbers = [sandbox_number(400 + i) for i in range(5)] + ["+15005550009", "+15005550004"]
    campaign = api.load_campaign(
        write_campaign(tmp_path / "c", campaign_id="to-warehouse", numbers=numbers, fallback_seconds=0)
    )
    settings = Settings.from_env(data_dir=tmp_path / "data")
    with SandboxServer(generate(Scenario(messages=200, calls=20, days=2)), port=0) as server:
        result = api.run_campaign(campaign, sdk_client(server), data_dir=settings.data_dir)
        report = run_ingest(
            settings,
            sources=["twilio", "send-logs"],
            client_factory=lambda: sdk_client(server),
            progress=False,
        )
    assert all(r.status != "failed" for r in report.results), [(r.source, r.error) for r in report.results]

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        rows = con.execute(
            """SELECT event_id, channel, provider_sid, provider_status, fallback_of, variant, experiment_id
               FROM attempt_facts WHERE campaign_id = ? ORDER BY channel, event_id""",
            ["to-warehouse"],
        ).fetchall()
    finally:
        con.close()
    by_event = {r[0]: r for r in rows}
    outcomes = {o.event_id: o for o in result.outcomes}
    assert set(by_event) == set(outcomes)  # every attempt, SMS and fallback calls, and nothing else
    for event_id, outcome in outcomes.items():
        _, channel, sid, status, fallback_of, variant, experiment = by_event[event_id]
        assert channel == outcome.step and sid == outcome.provider_sid and fallback_of == outcome.fallback_of
        assert variant == outcome.variant and experiment == campaign.experiment_id
        if sid is not None:
            assert status is not None  # joined to the Twilio record ingest loaded from the sandbox
    assert any(r[1] == "voice" and r[4] in by_event for r in rows)


@pytest.mark.slow
def test_sends_twilio_refused_show_their_error_in_attempt_facts(tmp_path: Path) -> None:
    """sender -> send log (error_code, no provider sid) -> ingest -> attempt_facts with the catalogue's category."""
    refused = {"+15005550001": (21211, "invalid-number"), "+15005550004": (21610, "opt-out")}
    numbers = [sandbox_number(450 + i) for i in range(3)] + list(refused)
    campaign = api.load_campaign(write_campaign(tmp_path / "c", campaign_id="refused", numbers=numbers))
    settings = Settings.from_env(data_dir=tmp_path / "data")
    with SandboxServer(generate(Scenario(messages=100, calls=10, days=2)), port=0) as server:
        result = api.run_campaign(campaign, sdk_client(server), data_dir=settings.data_dir)
        report = run_ingest(settings, sources=["twilio", "send-logs"], client_factory=lambda: sdk_client(server),
                            progress=False)
    assert report.ok, report.summary()
    logged = {json.loads(line)["user_id"]: json.loads(line)
              for line in send_log_path(settings.data_dir, "refused").read_text().splitlines()}
    user_of = {r.number: r.user_id for r in campaign.recipients}
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        facts = {r[0]: r[1:] for r in con.execute(
            "SELECT user_id, provider_sid, error_code, error_category FROM attempt_facts WHERE campaign_id = ?",
            ["refused"]).fetchall()}
    finally:
        con.close()
    assert len(facts) == len(numbers) and result.failed == len(refused)
    for number, (code, category) in refused.items():
        user = user_of[number]
        assert logged[user]["error_code"] == code and logged[user]["provider_sid"] is None
        assert facts[user] == (None, code, category)
    for number in numbers[:3]:  # sent: a provider sid, no send-log error code
        assert logged[user_of[number]]["error_code"] is None
        assert facts[user_of[number]][0] is not None
