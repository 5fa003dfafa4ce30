"""Reliability: crash safety of ingest (issue 8; kill points tied to progress since issue 14).

``switchboard ingest`` (all three sources: the Twilio API through the SDK against the
sandbox, JSONL send logs and conversions, BulkExport day files) is killed with SIGKILL at
seeded points of its run, then run again to completion; the warehouse must equal the one a
clean, uninterrupted run builds: same rows in every raw table, same latest statuses, same
facts, same rejects. After every kill the published snapshot, when there is one, must open
read-only and answer the analyst views (publishing is atomic), and after the rerun every
killed run shows as ``interrupted`` in ``ingest_runs`` (none stays ``running``).

Kill points are progress, never the clock (a busy machine cannot make the test fail):
* most kills hold the sandbox's k-th request of the run (k drawn from the clean run's request
  count) and kill the ingest while it waits for that answer: certainly mid-run;
* the others kill when the ingest's own progress output shows the send-log or the BulkExport
  source starting (the API part is then committed). Such a kill may come too late (the run
  finished first); it is then not counted.
At least 10 trials and at least 10 kills landing mid-run; trials 3 and 7 are killed twice in
a row before the final run. ``tests/test_ingest_api.py::test_kill_9_mid_ingest_then_rerun_equals_clean_run``
covers the API source alone with three kills on one directory.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
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


class GatedSandbox(SandboxServer):
    """The real sandbox, whose request counter can hold the request that reaches a given count until the
    test releases it: the client is then certainly mid-run, waiting for that answer."""

    def __init__(self, *args, **kwargs) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self.hold_at: int | None = None
        self.reached = threading.Event()
        self.release = threading.Event()
        super().__init__(*args, **kwargs)

    @property
    def request_count(self) -> int:
        return self._count

    @request_count.setter
    def request_count(self, value: int) -> None:  # the handler's `request_count += 1`
        with self._lock:
            self._count = max(self._count, value)
            hold = self.hold_at is not None and self._count >= self.hold_at and not self.reached.is_set()
            if hold:
                self.reached.set()
        if hold:
            self.release.wait(120)

    def arm(self, at: int) -> None:
        self.release.clear()
        self.reached.clear()
        self.hold_at = at

    def disarm(self) -> None:
        self.hold_at = None
        self.release.set()


class StderrMarkers:
    """Reads a child's stderr (its progress bars) and sets an event when a marker first appears."""

    def __init__(self, proc: subprocess.Popen[bytes], markers: list[bytes]) -> None:
        self.events = {m: threading.Event() for m in markers}
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        seen = b""
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(65536):
            seen = (seen + chunk)[-4096:]
            for marker, event in self.events.items():
                if marker in seen:
                    event.set()


def wait_for(event: threading.Event, proc: subprocess.Popen[bytes]) -> bool:
    """Until the event (progress) or the process's exit; True when the event came first."""
    while not event.wait(0.01):
        if proc.poll() is not None:
            return event.is_set()
    return True


def kill_once(server: GatedSandbox, env: dict[str, str], data_dir: Path, point: tuple[str, int]) -> bool:
    """One ingest of ``data_dir`` killed at ``point``: ("request", k) or ("source", 0|1). True if it landed."""
    kind, k = point
    if kind == "request":
        server.arm(server.request_count + k)
    cmd = [c for c in ingest_cmd(data_dir) if c != "--quiet"] if kind == "source" else ingest_cmd(data_dir)
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE if kind == "source" else subprocess.DEVNULL)
    try:
        if kind == "request":
            event = server.reached
        else:
            marker = (b"send-logs", b"bulk-export")[k]
            event = StderrMarkers(proc, [marker]).events[marker]
        landed = wait_for(event, proc) and proc.poll() is None
        if landed:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=600)
        return landed and proc.returncode == -signal.SIGKILL
    finally:
        server.disarm()


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_equals_clean_run(tmp_path: Path, world) -> None:
    with GatedSandbox(world, clock=SimClock(END)) as server:
        env = {**os.environ, "TWILIO_ACCOUNT_SID": server.account_sid, "TWILIO_AUTH_TOKEN": server.auth_token,
               "SWITCHBOARD_TWILIO_BASE_URL": server.base_url, "TWILIO_API_KEY": "", "TWILIO_API_SECRET": ""}
        clean = prepare(world, tmp_path / "clean")
        before = server.request_count
        done = subprocess.run(ingest_cmd(clean), env=env, cwd=ROOT, capture_output=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        requests = server.request_count - before  # the span request kill points are drawn from
        assert requests > 5
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
            landed = 0
            for _ in range(2 if trial in DOUBLE_KILL_TRIALS else 1):
                point = ("source", rng.randrange(2)) if rng.random() < 0.3 else ("request", rng.randint(1, requests))
                if kill_once(server, env, data_dir, point):
                    landed += 1
                assert_snapshot_usable(data_dir)
            kills_mid_run += landed
            rerun = subprocess.run(ingest_cmd(data_dir), env=env, cwd=ROOT, capture_output=True, text=True,
                                   timeout=300, check=False)
            assert rerun.returncode == 0, f"trial {trial}: rerun failed: {rerun.stderr[-2000:]}"
            got = warehouse_digest(data_dir / "warehouse.duckdb")
            for table, rows in expected.items():
                assert got[table] == rows, f"trial {trial}: {table} differs from the clean run after a kill"
            assert run_statuses(data_dir / "warehouse.duckdb").get("interrupted", 0) == landed, trial
            assert "running" not in run_statuses(data_dir / "warehouse.duckdb"), trial
            shutil.rmtree(data_dir)
    assert kills_mid_run >= MIN_KILLS, f"only {kills_mid_run} kills landed mid-run"


def run_statuses(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT status, count(*) FROM ingest_runs GROUP BY 1").fetchall())
    finally:
        con.close()
