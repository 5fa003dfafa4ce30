"""Reliability: crash safety of ingest (issue 8).

``switchboard ingest`` (all three sources: the Twilio API through the SDK against the
sandbox, JSONL send logs and conversions, BulkExport day files) is killed with SIGKILL at
seeded random moments of its run, then run again to completion; the warehouse must equal
the one a clean, uninterrupted run builds: same rows in every raw table, same latest
statuses, same facts, same rejects. After every kill the published snapshot, when there
is one, must open read-only and answer the analyst views (publishing is atomic).

At least 10 trials, and at least 10 kills landing mid-run: trials go on (at most 20) until
both hold; trials 3 and 7 are killed twice in a row before the final run. The
ingest owner's ``tests/test_ingest_api.py::test_kill_9_mid_ingest_then_rerun_equals_clean_run``
covers the API source alone with three kills on one directory.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from switchboard.sandbox.server import SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate, write_bulk_export, write_send_logs

ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 11, 1, tzinfo=UTC)
MIN_TRIALS = MIN_KILLS = 10
MAX_TRIALS = 20
DOUBLE_KILL_TRIALS = {3, 7}

MSG_COLS = ("sid, account_sid, messaging_service_sid, from_number, to_number, status, error_code, num_segments, "
            "body_encoding, body_length, price, price_unit, price_usd, date_created, date_sent, date_updated, "
            "to_country, to_carrier")
CALL_COLS = ("sid, account_sid, from_number, to_number, status, answered_by, duration_s, price, price_usd, "
             "start_time, end_time, to_country, to_carrier")


def warehouse_digest(db: Path) -> dict[str, object]:
    """Everything an analyst sees, without load times, run ids or file paths."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        queries = {
            "messages": f"SELECT {MSG_COLS} FROM twilio_messages ORDER BY sid",
            "calls": f"SELECT {CALL_COLS} FROM twilio_calls ORDER BY sid",
            "send_log": "SELECT * EXCLUDE (ingest_run_id, source_file) FROM send_log ORDER BY event_id",
            "conversions": "SELECT * EXCLUDE (ingest_run_id, source_file) FROM conversions ORDER BY event_id",
            "rejects": "SELECT source, line, raw, reason FROM rejects ORDER BY ALL",
            "latest_status": "SELECT status, count(*) FROM twilio_messages GROUP BY 1 ORDER BY 1",
            "message_facts": "SELECT count(*), count(DISTINCT sid), round(sum(cost_usd), 6), sum(is_delivered::INT), "
                             "count(event_id) FROM message_facts",
            "call_facts": "SELECT count(*), sum(duration_s), count(event_id) FROM call_facts",
            "attempt_facts": "SELECT channel, count(*) FROM attempt_facts GROUP BY 1 ORDER BY 1",
        }
        return {name: con.execute(q).fetchall() for name, q in queries.items()}
    finally:
        con.close()


def assert_snapshot_usable(data_dir: Path) -> None:
    """A published snapshot, if any, is a whole warehouse: opens read-only, views answer."""
    snap = data_dir / "warehouse.duckdb"
    if not snap.exists():
        return
    con = duckdb.connect(str(snap), read_only=True)
    try:
        for view in ("message_facts", "call_facts", "attempt_facts"):
            con.execute(f"SELECT count(*) FROM {view}").fetchone()
    finally:
        con.close()


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(seed=21, days=8, messages=8_000, calls=800, end=END))


def prepare(world, data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    write_send_logs(world, data_dir / "send_logs", "jsonl")
    write_bulk_export(world, data_dir / "bulk_export")
    return data_dir


def ingest_cmd(data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "switchboard.cli", "ingest", "--quiet", "--data-dir", str(data_dir)]


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_equals_clean_run(tmp_path: Path, world) -> None:
    with SandboxServer(world, clock=SimClock(END)) as server:
        env = {**os.environ, "TWILIO_ACCOUNT_SID": server.account_sid, "TWILIO_AUTH_TOKEN": server.auth_token,
               "SWITCHBOARD_TWILIO_BASE_URL": server.base_url, "TWILIO_API_KEY": "", "TWILIO_API_SECRET": ""}
        def started(proc: subprocess.Popen[bytes], before: int) -> None:
            """Wait for the run's first API request: interpreter start-up time varies with machine load."""
            deadline = time.monotonic() + 120
            while proc.poll() is None and server.request_count == before and time.monotonic() < deadline:
                time.sleep(0.005)

        clean = prepare(world, tmp_path / "clean")
        proc = subprocess.Popen(ingest_cmd(clean), env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        started(proc, server.request_count)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=600)
        work_seconds = time.monotonic() - t0  # first request to exit: the span kills are drawn from
        assert proc.returncode == 0, err.decode()[-2000:]
        expected = warehouse_digest(clean / "warehouse.duckdb")
        assert expected["messages"] and expected["calls"] and expected["send_log"]

        # Inputs prepared once, copied per trial: every trial starts from the same seeded history.
        template = prepare(world, tmp_path / "template")
        rng = random.Random(2026)
        kills_mid_run = 0
        for trial in range(MAX_TRIALS):
            if trial >= MIN_TRIALS and kills_mid_run >= MIN_KILLS:
                break
            data_dir = tmp_path / f"trial{trial}"
            shutil.copytree(template, data_dir)
            for _ in range(2 if trial in DOUBLE_KILL_TRIALS else 1):
                # Kill anywhere from the first API request to the snapshot publish at the end.
                delay = rng.uniform(0.0, 0.95) * work_seconds
                proc = subprocess.Popen(ingest_cmd(data_dir), env=env, cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                started(proc, server.request_count)
                try:
                    proc.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills_mid_run += 1
                assert_snapshot_usable(data_dir)
            rerun = subprocess.run(ingest_cmd(data_dir), env=env, cwd=ROOT, capture_output=True, text=True,
                                   timeout=300, check=False)
            assert rerun.returncode == 0, f"trial {trial}: rerun failed: {rerun.stderr[-2000:]}"
            got = warehouse_digest(data_dir / "warehouse.duckdb")
            for table, rows in expected.items():
                assert got[table] == rows, f"trial {trial}: {table} differs from the clean run after a kill"
            shutil.rmtree(data_dir)
    assert kills_mid_run >= MIN_KILLS, f"only {kills_mid_run} kills landed mid-run"
