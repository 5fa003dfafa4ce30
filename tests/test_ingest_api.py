"""Ingest from the sandbox through the real twilio SDK: counts, idempotence, status updates,
lag window, subaccounts, faults, 401, kill -9 and the CLI."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from switchboard.core.settings import Settings
from switchboard.ingest.pipeline import run_ingest
from switchboard.sandbox.server import FaultConfig, SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate, write_send_logs
from tests.conftest import sandbox_client_factory

ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 11, 1, tzinfo=UTC)

MSG_COLS = "sid, account_sid, status, error_code, num_segments, body_encoding, body_length, price, price_usd, " \
           "date_sent, date_updated, to_country, to_carrier, source"
CALL_COLS = "sid, account_sid, status, answered_by, duration_s, price, start_time, end_time, to_country, source"


def digest(db: Path) -> dict[str, object]:
    """Content of the raw tables and facts, without load times and run ids."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for name, q in {
            "messages": f"SELECT {MSG_COLS} FROM twilio_messages ORDER BY sid",
            "calls": f"SELECT {CALL_COLS} FROM twilio_calls ORDER BY sid",
            "send_log": "SELECT * EXCLUDE (ingest_run_id) FROM send_log ORDER BY event_id",
            "conversions": "SELECT * EXCLUDE (ingest_run_id) FROM conversions ORDER BY event_id",
            "message_facts": "SELECT count(*), count(DISTINCT sid), round(sum(cost_usd), 6), sum(is_delivered::INT) "
                             "FROM message_facts",
        }.items():
            out[name] = con.execute(q).fetchall()
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(seed=5, days=10, messages=6000, calls=600, end=END))


def _ingest(server, data_dir: Path, **kw):
    kw.setdefault("progress", False)
    return run_ingest(Settings(data_dir=data_dir), client_factory=sandbox_client_factory(server), **kw)


def test_small_warehouse_fixture(small_warehouse, small_world):
    con = duckdb.connect(str(small_warehouse), read_only=True)
    outbound = int((small_world.messages["direction"] != "inbound").sum())  # replies are kept, not facts
    assert con.execute("SELECT count(*) FROM message_facts").fetchone()[0] == outbound
    assert con.execute("SELECT count(*) FROM twilio_messages WHERE direction = 'inbound'").fetchone()[0] == (
        len(small_world.messages) - outbound)
    assert con.execute("SELECT count(*) FROM twilio_calls").fetchone()[0] == len(small_world.calls)
    assert con.execute("SELECT count(*) FROM attempt_facts").fetchone()[0] == len(small_world.send_log)
    assert con.execute("SELECT count(*) FROM conversions").fetchone()[0] == len(small_world.conversions)


def test_full_ingest_equals_world_and_rerun_is_identical(tmp_path, world):
    write_send_logs(world, tmp_path / "send_logs")
    with SandboxServer(world, clock=SimClock(END)) as server:
        first = _ingest(server, tmp_path)
        assert first.ok, first.summary()
        api = first.result("twilio")
        assert api.read == api.loaded == len(world.messages) + len(world.calls)
        before = digest(tmp_path / "warehouse.duckdb")
        second = _ingest(server, tmp_path)
        assert second.ok
        assert second.result("send-logs").read == 0  # every file already loaded
    assert digest(tmp_path / "warehouse.duckdb") == before
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM twilio_messages").fetchone()[0] == len(world.messages)
    # subaccounts: every account of the world is in the warehouse
    accounts = {r[0] for r in con.execute("SELECT DISTINCT account_sid FROM twilio_messages").fetchall()}
    assert accounts == set(world.account_sids) and len(accounts) >= 2
    # bodies are never stored, but their encoding is
    cols = {r[0] for r in con.execute("DESCRIBE twilio_messages").fetchall()}
    assert "body" not in cols
    assert con.execute("SELECT count(*) FROM twilio_messages WHERE body_encoding IS NULL").fetchone()[0] == 0
    # audit rows: one per source and run, read == loaded + rejected
    bad = con.execute("SELECT count(*) FROM ingest_runs WHERE rows_read <> rows_loaded + rows_rejected "
                      "OR status <> 'ok' AND status <> 'skipped'").fetchone()[0]
    assert bad == 0


def test_statuses_update_as_the_clock_advances(tmp_path, world):
    clock = SimClock(END - timedelta(days=1))
    with SandboxServer(world, clock=clock) as server:
        assert _ingest(server, tmp_path, sources="twilio").ok
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
        early = dict(con.execute("SELECT status, count(*) FROM twilio_messages GROUP BY 1").fetchall())
        con.close()
        assert early.get("sent", 0) + early.get("queued", 0) > 0  # recent messages not final yet
        clock.set(END + timedelta(days=2))
        later = _ingest(server, tmp_path, sources="twilio")
        assert later.ok
        # the lag window re-read only the recent part, not the whole history
        assert later.result("twilio").read < len(world.messages) + len(world.calls)
    with SandboxServer(world, clock=SimClock(END + timedelta(days=2))) as server:
        _ingest(server, tmp_path / "fresh", sources="twilio")
    a = digest(tmp_path / "warehouse.duckdb")
    b = digest(tmp_path / "fresh" / "warehouse.duckdb")
    assert a["messages"] == b["messages"]
    assert a["calls"] == b["calls"]


def test_lag_window_bounds_the_reread(tmp_path, world):
    with SandboxServer(world, clock=SimClock(END)) as server:
        _ingest(server, tmp_path, sources="twilio")
        zero = _ingest(server, tmp_path, sources="twilio", lag_hours=0).result("twilio")
        day = _ingest(server, tmp_path, sources="twilio", lag_hours=24).result("twilio")
        full = _ingest(server, tmp_path, sources="twilio", full_refresh=True).result("twilio")
    assert zero.read < day.read < full.read
    assert full.read == len(world.messages) + len(world.calls)
    sent = world.messages["date_sent"].to_numpy()
    last = sent.max()
    expected_msgs = int(((sent >= last - 24 * 3600)).sum())
    assert abs((day.read - zero.read) - expected_msgs) <= 0.2 * expected_msgs + len(world.calls)


def test_faults_give_the_same_warehouse(tmp_path, world):
    with SandboxServer(world, clock=SimClock(END)) as server:
        assert _ingest(server, tmp_path / "clean", sources="twilio").ok
    faults = FaultConfig(rate_429=0.04, rate_500=0.03, rate_503=0.02, drop_rate=0.03, retry_after=0, seed=3)
    with SandboxServer(world, clock=SimClock(END), faults=faults) as server:
        report = _ingest(server, tmp_path / "faulty", sources="twilio")
    assert report.ok, report.summary()
    assert "0 retried" not in report.result("twilio").detail
    assert digest(tmp_path / "faulty" / "warehouse.duckdb") == digest(tmp_path / "clean" / "warehouse.duckdb")


def test_wrong_token_stops_with_a_clear_message(tmp_path, world, capsys):
    with SandboxServer(world, clock=SimClock(END)) as server:
        report = run_ingest(Settings(data_dir=tmp_path), sources="twilio", progress=False,
                            client_factory=sandbox_client_factory(server, token="not-the-token"))
        assert not report.ok
        err = report.result("twilio").error
        assert "401" in err and "TWILIO_ACCOUNT_SID" in err and "TWILIO_AUTH_TOKEN" in err
        assert "not-the-token" not in err
        # the CLI: exit 2, message naming the variables, no traceback, token never printed
        env = {**os.environ, "TWILIO_ACCOUNT_SID": server.account_sid, "TWILIO_AUTH_TOKEN": "not-the-token",
               "SWITCHBOARD_TWILIO_BASE_URL": server.base_url}
        proc = subprocess.run([sys.executable, "-m", "switchboard.cli", "ingest", "--source", "twilio", "--quiet",
                               "--data-dir", str(tmp_path / "cli")], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "TWILIO_AUTH_TOKEN" in proc.stderr and "Traceback" not in proc.stderr
    assert "not-the-token" not in proc.stdout + proc.stderr


def test_missing_credentials_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "switchboard.cli", "ingest", "--source", "twilio", "--quiet",
                           "--data-dir", str(tmp_path)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    if (ROOT / ".streamlit" / "secrets.toml").exists():
        pytest.skip("a developer secrets.toml provides credentials")
    assert proc.returncode == 2
    assert "TWILIO_ACCOUNT_SID" in proc.stderr and "Traceback" not in proc.stderr
    from switchboard.core.twilio import CredentialsMissing, find_credentials

    with pytest.raises(CredentialsMissing):  # a ConfigError: exit 2 from the CLI
        find_credentials({}, tmp_path / ".streamlit" / "secrets.toml")


def test_kill_9_mid_ingest_then_rerun_equals_clean_run(tmp_path):
    big = generate(Scenario(seed=9, days=10, messages=40_000, calls=2000, end=END))
    with SandboxServer(big, clock=SimClock(END)) as server:
        assert _ingest(server, tmp_path / "clean", sources="twilio").ok
        clean = digest(tmp_path / "clean" / "warehouse.duckdb")
        env = {**os.environ, "TWILIO_ACCOUNT_SID": server.account_sid,
               "TWILIO_AUTH_TOKEN": server.auth_token, "SWITCHBOARD_TWILIO_BASE_URL": server.base_url}
        rng = random.Random(1)
        data = tmp_path / "killed"
        killed_mid = 0
        for trial in range(3):
            proc = subprocess.Popen([sys.executable, "-m", "switchboard.cli", "ingest", "--source", "twilio",
                                     "--quiet", "--data-dir", str(data)], env=env, cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5 + rng.random() * 1.5)
            if proc.poll() is None:
                killed_mid += 1
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert killed_mid >= 1
        report = _ingest(server, data, sources="twilio")
        assert report.ok, report.summary()
    got = digest(data / "warehouse.duckdb")
    assert [k for k in clean if got[k] != clean[k]] == []
