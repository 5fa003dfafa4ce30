"""Reliability: faults (issue 8). With the sandbox answering about 10 % of requests with
429 (Retry-After), 500, 503 or a dropped connection, ingest and sender finish with the
same result as against a healthy sandbox.

* Ingest, Twilio API source: ``tests/test_ingest_api.py::test_faults_give_the_same_warehouse``
  (12 % faults, warehouse digest equal to the clean run) covers it; here the whole pipeline
  (API + send logs + BulkExport, the CLI as users run it) is compared, so a fault can not
  hide behind a source the owner's test leaves out.
* Sender: the same campaign against a healthy and a faulty sandbox: the same recipients
  get exactly one message, with the same variant, template and outcome (sent, or refused
  with the same Twilio error), and the send logs agree record for record (ids, sids and
  times aside).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from switchboard.sandbox.server import FaultConfig, SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate, write_bulk_export, write_send_logs
from tests.test_reliability_crash import warehouse_digest

ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 11, 1, tzinfo=UTC)
TEN_PERCENT = {"rate_429": 0.03, "rate_500": 0.025, "rate_503": 0.02, "drop_rate": 0.025, "retry_after": 1}


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(seed=31, days=6, messages=40_000, calls=4_000, end=END))


def _cli_ingest(server: SandboxServer, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TWILIO_ACCOUNT_SID": server.account_sid, "TWILIO_AUTH_TOKEN": server.auth_token,
           "SWITCHBOARD_TWILIO_BASE_URL": server.base_url, "TWILIO_API_KEY": "", "TWILIO_API_SECRET": ""}
    return subprocess.run([sys.executable, "-m", "switchboard.cli", "ingest", "--data-dir", str(data_dir)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_ingest_all_sources_with_ten_percent_faults_equals_clean(tmp_path: Path, world) -> None:
    dirs = {}
    for label, faults in (("clean", FaultConfig()), ("faulty", FaultConfig(seed=4, **TEN_PERCENT))):
        d = tmp_path / label
        write_send_logs(world, d / "send_logs", "jsonl")
        write_bulk_export(world, d / "bulk_export")
        with SandboxServer(world, clock=SimClock(END), faults=faults) as server:
            proc = _cli_ingest(server, d)
            requests = server.request_count
        assert proc.returncode == 0, f"{label}: {proc.stderr[-2000:]}"
        dirs[label] = (d, requests, proc.stdout)
    clean_dir, clean_requests, _ = dirs["clean"]
    faulty_dir, faulty_requests, summary = dirs["faulty"]
    assert faulty_requests > clean_requests, "the faulty sandbox should have been asked again after faults"
    assert "0 retried" not in summary, summary
    assert warehouse_digest(faulty_dir / "warehouse.duckdb") == warehouse_digest(clean_dir / "warehouse.duckdb")


# --------------------------------------------------------------------------- sender


def _campaign(directory: Path, numbers: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows = ["number,user_id,locale"] + [f"{n},fault-user-{i:03d},en-US" for i, n in enumerate(numbers)]
    (directory / "recipients.csv").write_text("\n".join(rows) + "\n")
    (directory / "allow.txt").write_text("\n".join(numbers) + "\n")
    path = directory / "campaign.toml"
    path.write_text('''
id = "faulty"
name = "Faults"
purpose = "verification"
experiment_id = "exp-faulty"
recipients = "recipients.csv"
allow_list = "allow.txt"
from = "+15005550006"
rate_limit = 100
max_size = 100

[[variants]]
name = "control"
weight = 1
template_id = "ver_a"
bodies = { en = "Your code is 111111" }

[[variants]]
name = "short"
weight = 1
template_id = "ver_b"
bodies = { en = "Code 111111" }
''')
    return path


def _comparable(records: list[dict]) -> list[tuple]:
    """A send log without what legitimately differs between runs (event ids, sids, times)."""
    return sorted((r["user_id"], r["channel"], r["variant"], r["template_id"], r["experiment_id"], r["campaign_id"],
                   r["country"], r["provider_sid"] is None) for r in records)


@pytest.mark.slow
def test_sender_with_ten_percent_faults_gives_the_same_result(tmp_path: Path, world) -> None:
    from switchboard.sender import api
    from switchboard.sender.runner import RunOptions
    from switchboard.sender.transport import Credentials, make_client

    numbers = [f"+1500555{500 + i:04d}" for i in range(30)] + ["+15005550001", "+15005550004", "+15005550009"]
    outcomes = {}
    for label, faults in (("clean", FaultConfig()), ("faulty", FaultConfig(seed=9, **TEN_PERCENT))):
        campaign = api.load_campaign(_campaign(tmp_path / label / "c", numbers))
        with SandboxServer(world, port=0, faults=faults) as server:
            client = make_client(Credentials(server.account_sid, server.auth_token, base_url=server.base_url),
                                 timeout=5)
            result = api.run_campaign(campaign, client, data_dir=tmp_path / label / "data",
                                      options=RunOptions(sleep=lambda s: None))
            created = Counter(m["to"] for m in server.messages.live)
            requests = server.request_count
        log = tmp_path / label / "data" / "send_logs" / "sends-campaign-faulty.jsonl"
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        per_user = sorted((o.user_id, o.step, o.variant, o.state, o.error_code) for o in result.outcomes)
        outcomes[label] = (created, _comparable(records), per_user, requests)

    clean, faulty = outcomes["clean"], outcomes["faulty"]
    assert faulty[3] > clean[3], "no fault was injected"
    assert faulty[0] == clean[0], "a different set of messages was created under faults"
    assert all(c == 1 for c in faulty[0].values())
    assert faulty[1] == clean[1], "the send logs differ"
    assert faulty[2] == clean[2], "the per-recipient outcomes differ"
