"""``switchboard sandbox``'s arguments and the in-thread starter used by ``switchboard demo``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from twilio.rest import Client

from switchboard.sandbox import cli
from switchboard.sandbox.world import Scenario

ROOT = Path(__file__).resolve().parents[1]


def test_arguments_and_defaults():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--seed", "3", "--messages", "500", "--rate-429", "0.1",
                              "--end", "2026-06-01"])
    assert cli.scenario_from_args(args) == Scenario(seed=3, messages=500, end=datetime(2026, 6, 1, tzinfo=UTC))
    assert cli.faults_from_args(args).rate_429 == 0.1
    assert parser.parse_args([]).days == 90 and parser.parse_args([]).calls == 20_000


def test_start_in_thread_serves_the_sdk_and_writes_send_logs(tmp_path):
    scenario = Scenario(messages=800, calls=50, days=5, end=datetime(2026, 6, 1, tzinfo=UTC))
    server = cli.start_in_thread(scenario, port=0, send_logs_dir=tmp_path, quiet=True, clock="end")
    try:
        client = Client(server.account_sid, server.auth_token)
        client.api.base_url = server.base_url
        assert len(list(client.messages.stream(page_size=1000))) == int((server.world.messages["account_idx"] == 0).sum())
        text = cli.describe(server)
        assert f"TWILIO_ACCOUNT_SID={server.account_sid}" in text
        assert f"SWITCHBOARD_TWILIO_BASE_URL={server.base_url}" in text
        assert server.auth_token in text
        assert abs(server.now() - scenario.end.timestamp()) < 60  # the 'end' clock starts at the end of history
    finally:
        server.stop()
    assert (tmp_path / "ground_truth.json").exists()
    assert len(list(tmp_path.glob("sends-*.jsonl"))) == 5


def test_cli_process_prints_credentials_and_serves(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchboard.sandbox.cli", "--port", "0", "--messages", "300", "--calls", "20", "--days", "3",
         "--send-logs-dir", str(tmp_path / "logs")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        lines = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        out = "".join(lines)
        env = dict(l.strip().removeprefix("export ").split("=", 1) for l in lines if l.strip().startswith("export "))
        assert set(env) == {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "SWITCHBOARD_TWILIO_BASE_URL"}, out
        client = Client(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"])
        client.api.base_url = env["SWITCHBOARD_TWILIO_BASE_URL"]
        assert len(client.messages.list(limit=5)) == 5
        gt = json.loads((tmp_path / "logs" / "ground_truth.json").read_text())
        assert gt["messages"] == 300
    finally:
        proc.terminate()
        proc.wait(10)
