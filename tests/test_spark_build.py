"""Issue 20: the facts and rollups built over a Parquet lake by Spark equal the DuckDB build, and a DuckDB
warehouse served from the lake answers the analytics as the ingest's own warehouse does.

The data: the small seeded sandbox world ingested twice through the real SDK, first with the sandbox clock at
the instant of its last days with the most messages in flight (still sent, unpriced), then two days after its
end (the late statuses and prices arrived, read back through the lag window). Both states are built by both engines.
Spark runs ``local[2]`` in one session for the module (it takes ~15 s to start).
"""

from __future__ import annotations

import argparse
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from switchboard.ingest import lake_build
from tests.conftest import SMALL_END, sandbox_client_factory

WINDOW = 30  # Settings' default conversion window, as the ingest used it
# one xdist worker runs the whole module (make test: --dist loadgroup): one Spark session, each build once
pytestmark = pytest.mark.xdist_group("lake_build")


def _same_tables(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection, names: list[str]) -> dict[str, int]:
    """Every table equal in columns, types and rows (sorted on every column); floats within 1e-9
    relative (sums in another order), everything else exact. Returns rows per table."""
    rows = {}
    for name in names:
        ta = a.execute(f'DESCRIBE "{name}"').fetchall()
        tb = b.execute(f'DESCRIBE "{name}"').fetchall()
        assert [r[:2] for r in ta] == [r[:2] for r in tb], name
        order = ", ".join(f'"{r[0]}"' for r in ta)
        fa = a.execute(f'SELECT * FROM "{name}" ORDER BY {order}').df()
        fb = b.execute(f'SELECT * FROM "{name}" ORDER BY {order}').df()
        pd.testing.assert_frame_equal(fa, fb, check_exact=False, rtol=1e-9, obj=name)
        rows[name] = len(fa)
    return rows


def _built() -> list[str]:
    return [name for name, _ in lake_build.fact_builds(WINDOW)]


@pytest.fixture(scope="module")
def states(tmp_path_factory, small_world) -> dict[str, Path]:
    """Published warehouses of the same world: 'early' (some statuses and prices pending) and 'late'
    (they arrived: the second run read them back through the lag window)."""
    from switchboard.core.settings import Settings
    from switchboard.ingest.pipeline import run_ingest
    from switchboard.sandbox.server import SandboxServer, SimClock
    from switchboard.sandbox.world import write_send_logs

    root = tmp_path_factory.mktemp("lake_states")
    data = root / "data"
    write_send_logs(small_world, data / "send_logs")
    early = _busiest_instant(small_world)
    clock = SimClock(early)
    out = {}
    with SandboxServer(small_world, clock=clock) as server:
        for label, when in (("early", early), ("late", SMALL_END + timedelta(days=2))):
            clock.set(when)
            report = run_ingest(Settings(data_dir=data), client_factory=sandbox_client_factory(server), progress=False)
            assert report.ok, report.summary()
            out[label] = root / f"{label}.duckdb"
            shutil.copyfile(data / "warehouse.duckdb", out[label])
    return out


def _busiest_instant(world) -> datetime:
    """The instant of the world's last three days with the most messages sent but not final yet (their
    status and price arrive later): the early state's clock."""
    sent, final = world.messages["date_sent"].to_numpy(), world.messages["final_at"].to_numpy()
    candidates = np.unique(sent[sent > sent.max() - 3 * 86400])
    in_flight = [int(((sent <= t) & (final > t)).sum()) for t in candidates]
    return datetime.fromtimestamp(int(candidates[int(np.argmax(in_flight))]), tz=UTC)


def _lake(root: Path, warehouse_path: Path) -> Path:
    """A lake whose raw/ is the warehouse's export (as ``switchboard build`` writes it)."""
    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        lake_build.export_raw(con, root)
    finally:
        con.close()
    return root


def test_the_data_has_late_statuses_and_conversions_across_midnight(states):
    """The equality tests below are only as good as their data: check it has the hard cases."""
    early = duckdb.connect(str(states["early"]), read_only=True)
    late = duckdb.connect(str(states["late"]), read_only=True)
    pending = "SELECT count(*) FROM message_facts WHERE is_pending"
    unpriced = "SELECT count(*) FROM message_facts WHERE cost_usd IS NULL"
    assert early.execute(pending).fetchone()[0] > late.execute(pending).fetchone()[0]
    assert early.execute(unpriced).fetchone()[0] > late.execute(unpriced).fetchone()[0]
    midnight = ("SELECT count(*) FROM attempt_facts WHERE converted "
                "AND CAST(timezone('UTC', converted_at) AS DATE) > sent_day")
    assert late.execute(midnight).fetchone()[0] > 0
    assert late.execute("SELECT count(*) FROM _fallback_chain_facts").fetchone()[0] > 0
    assert late.execute("SELECT count(DISTINCT member) FROM _experiment_exposures").fetchone()[0] > 0


def test_duckdb_lake_build_equals_the_ingest_warehouse(tmp_path, states):
    """The lake build runs the ingest's own SELECTs: served from the lake, every built table equals the
    published warehouse's (member numbers kept: the members table is an input in raw/)."""
    lake = _lake(tmp_path / "lake", states["late"])
    report = lake_build.build_duckdb(lake, conversion_window_minutes=WINDOW)
    assert set(report.rows) == set(_built()) and report.rows["_message_facts"] > 0
    assert (lake / "facts" / "_message_facts").is_dir()
    assert any(p.name.startswith("sent_day=") for p in (lake / "facts" / "_message_facts").iterdir())
    served = lake_build.serve(lake, tmp_path / "served.duckdb", conversion_window_minutes=WINDOW)
    a = duckdb.connect(str(states["late"]), read_only=True)
    b = duckdb.connect(str(served), read_only=True)
    _same_tables(a, b, _built() + ["message_facts", "call_facts", "attempt_facts", "send_log", "countries"])
    # every table and view an analytics function or page may read is there (not the ingest's own
    # bookkeeping of incremental builds and snapshots)
    names = ("SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views() "
             "WHERE NOT internal")
    bookkeeping = {"_deleted_keys", "_fact_changes", "_facts_state", "_snapshots"}
    missing = {r[0] for r in a.execute(names).fetchall()} - {r[0] for r in b.execute(names).fetchall()}
    assert missing <= bookkeeping, missing


def test_build_command(tmp_path, states, capsys):
    from switchboard.cli import main

    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(states["late"], data / "warehouse.duckdb")
    lake = tmp_path / "lake"
    assert main(["build", "--engine", "duckdb", "--lake", str(lake), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "_daily_attempt_rollup" in out and "Served on DuckDB" in out
    con = duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM attempt_facts").fetchone()[0] > 0
    # the user's mistakes: one line naming the fix, exit 2
    assert main(["build", "--lake", str(tmp_path / "l2"), "--data-dir", str(tmp_path / "none")]) == 2
    assert "switchboard ingest" in capsys.readouterr().err
    assert main(["build", "--lake", str(tmp_path / "l3"), "--no-export"]) == 2
    assert "--no-export" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["build", "--engine", "trino", "--lake", str(lake)])
    assert bad.value.code == 2


def test_to_spark_refuses_what_it_cannot_translate():
    with pytest.raises(ValueError, match="timezone"):
        lake_build.to_spark("SELECT CAST(timezone('Europe/Paris', t) AS DATE) FROM x")
    with pytest.raises(ValueError, match="LEFT joins"):
        lake_build.to_spark("SELECT a.k, r.v FROM a JOIN b ON b.k = a.k ASOF LEFT JOIN r ON r.k = a.k AND r.t >= a.t")


# ---------------------------------------------------------------- Spark


@pytest.fixture(scope="module")
def spark():
    if not os.environ.get("CI"):  # CI installs both (make test); a developer without them gets a skip
        pytest.importorskip("pyspark", reason="make setup installs PySpark (the spark extra)")
        if not shutil.which("java"):
            pytest.skip("Java 17 is missing: apt-get install openjdk-17-jre-headless (make java)")
    session = lake_build.spark_session("local[2]", shuffle_partitions=2)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def lakes(tmp_path_factory, states, spark) -> dict[tuple[str, str], Path]:
    """Each state built by each engine and served on DuckDB: (state, engine) -> served warehouse."""
    root = tmp_path_factory.mktemp("lakes")
    out = {}
    for label, path in states.items():
        for engine in lake_build.ENGINES:
            lake = _lake(root / f"{label}_{engine}", path)
            if engine == "spark":
                lake_build.build_spark(spark, lake, conversion_window_minutes=WINDOW)
            else:
                lake_build.build_duckdb(lake, conversion_window_minutes=WINDOW)
            out[label, engine] = lake_build.serve(lake, lake / "warehouse.duckdb", conversion_window_minutes=WINDOW)
    return out


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("state", ["early", "late"])
def test_spark_build_equals_duckdb_build(lakes, state):
    a = duckdb.connect(str(lakes[state, "duckdb"]), read_only=True)
    b = duckdb.connect(str(lakes[state, "spark"]), read_only=True)
    rows = _same_tables(a, b, _built())
    assert rows["_attempt_facts"] > 0 and rows["_daily_message_rollup"] > 0 and rows["_experiment_exposures"] > 0
    # the Spark lake itself (before serving) holds the same rows, partitioned by day
    assert b.execute("SELECT count(*) FROM attempt_facts WHERE converted").fetchone()[0] == \
        a.execute("SELECT count(*) FROM attempt_facts WHERE converted").fetchone()[0]


@pytest.mark.spark
@pytest.mark.slow
def test_analytics_answer_the_same_on_the_spark_served_warehouse(lakes, states):
    """The ingest's published warehouse and the one served from Spark's lake: same frames, read from
    the rollups on both (the marks are written)."""
    from switchboard.analytics import _sql, delivery, errors, fallback
    from switchboard.analytics.filters import Filters

    ingest = duckdb.connect(str(states["late"]), read_only=True)
    served = duckdb.connect(str(lakes["late", "spark"]), read_only=True)
    assert _sql.rollup_ready(served, "_daily_attempt_rollup") and _sql.rollup_ready(served, "_daily_message_rollup")
    start, end = date(2026, 10, 19), SMALL_END.date()
    calls = [
        lambda con: delivery.summary(con, start=start, end=end),
        lambda con: delivery.delivery_by(con, start=start, end=end, by="day"),
        lambda con: delivery.latency_by_country(con, start=start, end=end),
        lambda con: errors.top_errors(con, start=start, end=end),
        lambda con: fallback.fallback_summary(con, start=start, end=end, filters=Filters()),
    ]
    for call in calls:
        pd.testing.assert_frame_equal(call(ingest), call(served), check_exact=False, rtol=1e-9)


def test_spark_engine_without_pyspark_names_the_fix(monkeypatch, tmp_path):
    """--engine spark on a machine without PySpark: one line naming the install, exit 2 (ConfigError)."""
    import builtins

    from switchboard.core.errors import ConfigError

    real_import = builtins.__import__

    def no_pyspark(name, *args, **kwargs):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ImportError("No module named 'pyspark'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyspark)
    args = argparse.Namespace(engine="spark", master=None)
    with pytest.raises(ConfigError, match="make setup"):
        lake_build._build(args, tmp_path, WINDOW)
