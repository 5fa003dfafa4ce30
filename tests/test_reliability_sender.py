"""Reliability: the sender killed mid-campaign and restarted (issue 8).

``switchboard send campaign.toml --send`` runs as a real process against the sandbox (in
this process, on a free port); it is killed with SIGKILL at seeded random moments, several
times, and restarted until it finishes. The sandbox's own record of what was created must
show exactly one message per recipient (no duplicates, nobody skipped), recipients the API
refuses (Twilio's magic numbers) are recorded once with their error and never sent, and
the send log holds exactly one SMS record per recipient whose provider sid is the one the
sandbox created.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from switchboard.sandbox.server import SandboxServer
from switchboard.sandbox.world import Scenario, generate

ROOT = Path(__file__).resolve().parents[1]
MAGIC_ERRORS = {"+15005550001": 21211, "+15005550004": 21610}
RECIPIENTS = 40
RATE = 10.0  # messages per second: a run takes about 4 s, long enough to be killed mid-way


def sandbox_number(i: int) -> str:
    return f"+1500555{300 + i:04d}"


def write_campaign(directory: Path, numbers: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows = ["number,user_id,locale"] + [f"{n},crash-user-{i:03d},en-US" for i, n in enumerate(numbers)]
    (directory / "recipients.csv").write_text("\n".join(rows) + "\n")
    (directory / "allow.txt").write_text("\n".join(numbers) + "\n")
    path = directory / "campaign.toml"
    path.write_text(f'''
id = "crashy"
name = "Kill me"
purpose = "password_reset"
experiment_id = "exp-crashy"
recipients = "recipients.csv"
allow_list = "allow.txt"
from = "+15005550006"
rate_limit = {RATE}
max_size = 100

[[variants]]
name = "control"
weight = 1
template_id = "pr_standard"
bodies = {{ en = "Your code is 123456" }}

[[variants]]
name = "short"
weight = 1
template_id = "pr_short"
bodies = {{ en = "Code: 123456" }}
''')
    return path


@pytest.mark.slow
def test_sender_killed_mid_campaign_and_restarted_sends_each_recipient_once(tmp_path: Path) -> None:
    world = generate(Scenario(messages=300, calls=30, days=2, end=datetime(2026, 11, 1, tzinfo=UTC)))
    numbers = [sandbox_number(i) for i in range(RECIPIENTS - len(MAGIC_ERRORS))] + list(MAGIC_ERRORS)
    campaign = write_campaign(tmp_path / "campaign", numbers)
    data_dir = tmp_path / "data"
    with SandboxServer(world, port=0) as server:
        env = {**os.environ, "TWILIO_ACCOUNT_SID": server.account_sid, "TWILIO_AUTH_TOKEN": server.auth_token,
               "SWITCHBOARD_TWILIO_BASE_URL": server.base_url, "TWILIO_API_KEY": "", "TWILIO_API_SECRET": ""}
        cmd = [sys.executable, "-m", "switchboard.cli", "send", str(campaign), "--send", "--data-dir", str(data_dir),
           "--in-flight-window", "1"]  # the sandbox answers in ms: a killed run's request is long done
        rng = random.Random(77)
        kills = 0
        progress: list[int] = []
        for _attempt in range(12):
            before = len(server.messages.live)
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # Kill once this run has sent a seeded random number of messages (plus up to 60 ms, so some
            # kills land between a request leaving and its answer being recorded): wall-clock delays
            # would depend on how busy the machine is.
            target = before + rng.randint(1, 8)
            deadline = time.monotonic() + 120
            while proc.poll() is None and len(server.messages.live) < target and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.06))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                kills += 1
                progress.append(len(server.messages.live))
                if kills >= 4:
                    break
                continue
            _out, err = proc.communicate()
            assert proc.returncode == 0, err[-2000:]
            break
        final = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        assert final.returncode == 0, final.stderr[-2000:]
        created = Counter(m["to"] for m in server.messages.live)

    assert kills >= 3, f"only {kills} kills landed mid-campaign"
    assert any(0 < p < len(numbers) - len(MAGIC_ERRORS) for p in progress), \
        f"no kill landed while messages were being sent: {progress}"
    sendable = [n for n in numbers if n not in MAGIC_ERRORS]
    duplicates = {n: c for n, c in created.items() if c > 1}
    assert not duplicates, f"sent twice: {duplicates}"
    skipped = [n for n in sendable if created[n] == 0]
    assert not skipped, f"never sent: {skipped}"
    assert all(created[n] == 0 for n in MAGIC_ERRORS)

    log = data_dir / "send_logs" / "sends-campaign-crashy.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    sms = [r for r in records if r["channel"] == "sms"]
    per_user = Counter(r["user_id"] for r in sms)
    assert set(per_user) == {f"crash-user-{i:03d}" for i in range(len(numbers))}, "a recipient is missing from the log"
    assert all(c == 1 for c in per_user.values()), {u: c for u, c in per_user.items() if c > 1}
    sids = {r["provider_sid"] for r in sms if r["provider_sid"]}
    assert sids == {m["sid"] for m in server.messages.live}
    assert sum(1 for r in sms if not r["provider_sid"]) == len(MAGIC_ERRORS)
