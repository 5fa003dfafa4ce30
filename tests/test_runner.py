"""Issue 16: ``switchboard ingest --every`` (switchboard/runner.py), the continuous ingest.

Real parts: a sandbox world through the real twilio SDK, real DuckDB files, the real ``switchboard`` command in
a subprocess stopped by Ctrl-C/SIGTERM after the runs it printed (progress), and a second process holding the
ingest database's lock to make a run fail.
"""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from switchboard.cli import main
from switchboard.core.settings import Settings
from switchboard.runner import HEARTBEAT, ContinuousIngest
from switchboard.sandbox.server import SandboxServer, SimClock
from switchboard.sandbox.world import Scenario, generate, write_send_logs
from tests.conftest import sandbox_client_factory
from tests.live_util import Command

END = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def world():
    return generate(Scenario(seed=11, days=2, messages=400, calls=30, end=END))


def _rows(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_each_run_publishes_a_heartbeat_and_the_freshness_view(tmp_path: Path, world, monkeypatch) -> None:
    settings = Settings(data_dir=tmp_path)
    write_send_logs(world, settings.send_logs_dir)
    out, err = io.StringIO(), io.StringIO()
    clock = SimClock(datetime.fromtimestamp(int(world.messages.date_sent.median()), UTC))
    with SandboxServer(world, clock=clock) as server:
        loop = ContinuousIngest(settings, every=1, out=out, err=err,
                                ingest_kwargs={"client_factory": sandbox_client_factory(server)})
        loop.start()
        try:
            assert loop.wait_published(2, timeout=240), err.getvalue()
        finally:
            loop.stop(timeout=240)
    lines = out.getvalue().splitlines()
    assert re.match(r"\d\d:\d\d:\d\dZ run 1 \(reconcile\) ok in [\d.]+ s: twilio \+\d+, send-logs \+\d+", lines[0]), lines
    assert re.match(r"\d\d:\d\d:\d\dZ run 2 ok in ", lines[1]), lines  # not a reconcile: --reconcile-every 1h
    assert "; next in " in lines[0] and err.getvalue() == ""
    wh = settings.warehouse_path
    runs = _rows(wh, "SELECT run_id, source, status, rows_loaded FROM ingest_runs ORDER BY run_id")
    beats = [r for r in runs if r[1] == HEARTBEAT]
    assert len(beats) >= 2 and all(b[2] == "ok" for b in beats)
    first_cycle = [r for r in runs if r[0] < beats[0][0]]
    assert beats[0][3] == sum(r[3] for r in first_cycle) > 0  # the heartbeat carries the cycle's totals
    fresh = _rows(wh, "SELECT source, run_id, visible_at, run_finished_at, newest_record_at, newest_age_s "
                      "FROM freshness ORDER BY run_id")
    assert {f[0] for f in fresh} >= {"twilio", "send-logs"}
    for source, run_id, visible, finished, newest, age in fresh:
        beat = min(b[0] for b in beats if b[0] > run_id)  # visible at the cycle's heartbeat, after the run
        (beat_at,) = _rows(wh, f"SELECT finished_at FROM ingest_runs WHERE run_id = {beat}")[0]
        assert visible == beat_at and visible >= finished
        assert newest is not None and age == pytest.approx((visible - newest).total_seconds(), abs=1e-3)
    comments = _rows(wh, "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'freshness' AND comment IS NULL")
    assert comments == [(0,)]  # every column documented
    # the Data page charts it: per source, lag p95 and the newest record's age at each publish
    import json

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/data_health.py").run()
    assert not at.exception, [e.value for e in at.exception]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    fresh = [c for c in charts if "Freshness per run" in json.dumps(c["layout"].get("title", ""))]
    assert len(fresh) == 1
    names = {t["name"] for t in fresh[0]["data"]}
    assert {"twilio: lag p95", "send-logs: newest record age"} <= names, names


def test_a_failed_run_is_logged_and_retried_with_backoff(tmp_path: Path, world) -> None:
    """The ingest database locked by another process: the run fails, the loop says so, backs off, recovers."""
    settings = Settings(data_dir=tmp_path)
    write_send_logs(world, settings.send_logs_dir)
    out, err = io.StringIO(), io.StringIO()
    loop = ContinuousIngest(settings, every=10, out=out, err=err, ingest_kwargs={"sources": "send-logs"})
    first = loop.run_cycle()
    assert first.ok and loop.published == 1
    hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()"
    locker = subprocess.Popen([sys.executable, "-c", hold, str(settings.ingest_db_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        failed = [loop.run_cycle(), loop.run_cycle()]
    finally:
        locker.stdin.close()
        locker.wait(60)
    assert [c.ok for c in failed] == [False, False] and loop.failures == 2 and loop.published == 1
    assert loop._delay(failed[1]) > 10  # the second failure in a row waits twice the interval (minus its run)
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and all(re.search(r"run [23] FAILED in .*in use.*; retrying in \d+ s", x) for x in lines)
    recovered = loop.run_cycle()
    assert recovered.ok and loop.failures == 0 and loop.published == 2
    assert "run 4 ok" in out.getvalue()


def test_the_full_lag_window_is_reread_on_its_own_slower_schedule(tmp_path: Path, world) -> None:
    """A reconciling cycle re-reads the whole lag window from the list API; the cycles between re-read the last
    15 minutes; the next reconcile is due ``reconcile_every`` after the last one that published, so one that
    fails stays due."""
    from switchboard.ingest.cli import TICK_LAG_HOURS

    settings = Settings(data_dir=tmp_path)
    out, err = io.StringIO(), io.StringIO()
    with SandboxServer(world, clock=SimClock(END)) as server:
        loop = ContinuousIngest(settings, every=30, reconcile_every=3600, out=out, err=err,
                                ingest_kwargs={"sources": "twilio", "client_factory": sandbox_client_factory(server)})
        assert (loop._lag(True), loop._lag(False)) == (settings.lag_hours, TICK_LAG_HOURS)
        first, second = loop.run_cycle(), loop.run_cycle()
        loop.last_reconcile -= 3600  # an hour later on the loop's clock
        third, fourth = loop.run_cycle(), loop.run_cycle()
        assert [c.ok for c in (first, second, third, fourth)] == [True] * 4, err.getvalue()
        assert [c.reconcile for c in (first, second, third, fourth)] == [True, False, True, False]
        loop.last_reconcile -= 3600
        hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()"
        locker = subprocess.Popen([sys.executable, "-c", hold, str(settings.ingest_db_path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout.readline().strip() == "locked"
            failed = loop.run_cycle()
        finally:
            locker.stdin.close()
            locker.wait(60)
        retried = loop.run_cycle()
    assert failed.reconcile and not failed.ok
    assert retried.reconcile and retried.ok  # the failed reconcile was not forgotten
    read = dict(_rows(settings.warehouse_path, "SELECT run_id, rows_read FROM ingest_runs WHERE source = 'twilio' "
                                               "AND status = 'ok' ORDER BY run_id"))
    reads = list(read.values())
    # the whole 2-day history (every message and call, in the 72-hour window) at each reconcile; the last
    # 15 minutes (and the pending rows fetched by sid) in between
    assert len(reads) == 5 and reads[0] >= len(world.messages) and reads[2] == reads[0] and reads[4] == reads[0]
    assert reads[1] < reads[0] / 4 and reads[3] < reads[0] / 4, reads
    lines = out.getvalue().splitlines()
    assert ["(reconcile)" in line for line in lines] == [True, False, True, False, True], lines


@pytest.mark.parametrize(("args", "words"), [
    (["--every", "0"], ["--every", "at least 1 s"]),
    (["--every", "soon"], ["--every", "60s"]),
    (["--every", "1", "--full-refresh"], ["--full-refresh", "without --every"]),
    (["--every", "1m", "--until", "2026-01-01"], ["--until", "--every"]),
])
def test_bad_continuous_flags_exit_2_in_one_line(tmp_path: Path, capsys, args: list[str], words: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        code = main(["ingest", "--data-dir", str(tmp_path), *args])
        raise SystemExit(code)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2, err
    assert "Traceback" not in err and "unexpected" not in err
    assert all(w in err for w in words), err
    assert not (tmp_path / "ingest.duckdb").exists()  # refused before anything ran


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_the_loop_cleanly(tmp_path: Path, world, sig: int) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    write_send_logs(world, settings.send_logs_dir)
    with Command(["ingest", "--every", "1", "--source", "send-logs", "--data-dir", str(data_dir)], data_dir) as cmd:
        cmd.wait_line(r"run 1 \(reconcile\) ok .*send-logs \+\d")
        cmd.wait_line(r"run 2 ok .*send-logs \+0")  # the files were loaded once
        code = cmd.interrupt(sig)
        assert code == 0, cmd.stderr()
        assert re.search(r"Stopped after \d+ run\(s\), \d+ published\.", cmd.stderr())
        assert "Traceback" not in cmd.stderr()
    # A run the signal cut short stays 'running' until the next ingest marks it interrupted and resumes.
    assert main(["ingest", "--quiet", "--source", "send-logs", "--data-dir", str(data_dir)]) == 0
    status = dict(_rows(data_dir / "ingest.duckdb", "SELECT status, count(*) FROM ingest_runs GROUP BY ALL"))
    assert "running" not in status and "failed" not in status, status
    loaded = _rows(data_dir / "warehouse.duckdb", "SELECT count(*) FROM send_log")[0][0]
    assert loaded == len(world.send_log)
