"""Kill the sender (SIGKILL, a real subprocess) at several points; nobody gets two messages, nobody is skipped.

The sandbox runs in this test process, in a thread; the sender is ``python -m sender.cli
... --send`` pointed at it through the environment, exactly as a user runs it. The
``SWITCHBOARD_SENDER_CRASH_AT`` hook makes the sender SIGKILL itself at a named point
(after the ledger intent, after the API call, after the ledger outcome, after the send
log), and one run is killed from outside at an arbitrary moment.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from switchboard.sandbox.server import SandboxServer
from switchboard.sandbox.world import Scenario, generate
from switchboard.sender.ledger import ledger_path
from tests.test_sender_sandbox import MAGIC_ERRORS, read_send_log, sandbox_number, write_campaign

ROOT = Path(__file__).resolve().parent.parent


def _env(server: SandboxServer, crash_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SWITCHBOARD_"))}
    env.update(
        TWILIO_ACCOUNT_SID=server.account_sid,
        TWILIO_AUTH_TOKEN=server.auth_token,
        SWITCHBOARD_TWILIO_BASE_URL=server.base_url,
    )
    if crash_at:
        env["SWITCHBOARD_SENDER_CRASH_AT"] = crash_at
    return env


def _send(campaign: Path, data_dir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "switchboard.sender.cli", str(campaign), "--send", "--data-dir", str(data_dir),
         "--in-flight-window", "1"],  # the sandbox answers in ms: a killed run's request is long done
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ledger_rows(data_dir: Path, campaign_id: str) -> list[dict[str, Any]]:
    path = ledger_path(data_dir, campaign_id)
    if not path.exists():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM sends")]
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
    finally:
        con.close()


@pytest.mark.slow
def test_killed_sender_resumes_without_duplicates_or_gaps(tmp_path: Path) -> None:
    numbers = [sandbox_number(200 + i) for i in range(14)] + list(MAGIC_ERRORS)
    data_dir = tmp_path / "data"
    fast = write_campaign(tmp_path / "fast", campaign_id="crash", numbers=numbers, rate_limit=50)
    slow = write_campaign(tmp_path / "slow", campaign_id="crash", numbers=numbers, rate_limit=4)
    world = generate(Scenario(messages=200, calls=20, days=2))
    with SandboxServer(world, port=0) as server:
        # Deterministic crash points, each in a fresh process that first recovers from the last one.
        for point in ("after_create:3", "after_intent:2", "after_done:2", "after_log:2"):
            proc = _send(fast, data_dir, _env(server, point))
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == -signal.SIGKILL, (point, out, err)

        # An arbitrary moment, from outside: once a few more sends are under way.
        before = len(_ledger_rows(data_dir, "crash"))
        proc = _send(slow, data_dir, _env(server))
        deadline = time.monotonic() + 30
        while len(_ledger_rows(data_dir, "crash")) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.13)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL

        # Finally a clean run to the end.
        proc = _send(fast, data_dir, _env(server))
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Campaign crash:" in out and "switchboard ingest" in out

        created = Counter(m["to"] for m in server.messages.live)
        for number in numbers:
            assert created[number] == (0 if number in MAGIC_ERRORS else 1), (number, created)

    rows = _ledger_rows(data_dir, "crash")
    assert len(rows) == len(numbers)
    assert all(r["state"] in ("sent", "failed") and r["logged"] == 1 for r in rows)
    # The after_create crash left a message Twilio had created but the ledger had not recorded:
    # the restart found it at the provider instead of sending again.
    assert sum(r["recovered"] for r in rows) >= 1
    sids = {r["provider_sid"] for r in rows if r["provider_sid"]}
    assert sids == {m["sid"] for m in server.messages.live}

    records = read_send_log(data_dir, "crash")
    assert len(records) == len(numbers)  # every recipient, once
    assert len({r["event_id"] for r in records}) == len(numbers)
    assert {r["provider_sid"] for r in records if r["provider_sid"]} == sids
