"""``switchboard export --parquet``: hive-partitioned Parquet that rebuilds the same warehouse."""

from __future__ import annotations

import argparse
from datetime import date

import duckdb
import pandas as pd

from switchboard.ingest import export
from tests.conftest import SMALL_END

QUERIES = {
    "by_country": "SELECT country_iso2, count(*) n, sum(is_delivered::INT) d, round(sum(cost_usd), 6) c "
                  "FROM message_facts GROUP BY 1 ORDER BY 1",
    "daily": "SELECT sent_day, count(*), avg(delivery_latency_s) FROM message_facts GROUP BY 1 ORDER BY 1",
    "errors": "SELECT error_code, error_category, count(*) FROM message_facts WHERE error_code IS NOT NULL "
              "GROUP BY ALL ORDER BY 1",
    "calls": "SELECT start_day, status, count(*), sum(duration_s) FROM call_facts GROUP BY ALL ORDER BY ALL",
    "attempts": "SELECT channel, variant, count(*), sum(converted::INT), sum(is_fallback::INT) FROM attempt_facts "
                "GROUP BY ALL ORDER BY ALL",
    "raw": "SELECT count(*), count(DISTINCT sid), sum(price_usd) FROM twilio_messages",
    "send_log": "SELECT count(*), min(sent_at), max(sent_at) FROM send_log",
    "dims": "SELECT count(*), count(region) FROM countries",
}


def test_export_round_trip(tmp_path, small_warehouse):
    out = tmp_path / "export"
    args = argparse.Namespace(parquet=out, data_dir=small_warehouse.parent)
    assert export.run(args) == 0
    days = sorted(p.name for p in (out / "message_facts").iterdir())
    assert days and all(d.startswith("sent_day=") for d in days)
    assert (out / "twilio_messages").is_dir() and (out / "countries" / "data.parquet").is_file()
    # internal derived tables (materialised facts, rollups, _experiment_exposures) are not exported
    internal = duckdb.connect(str(small_warehouse), read_only=True).execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '\\_%' ESCAPE '\\'").fetchall()
    assert ("_experiment_exposures",) in internal and ("_daily_message_rollup",) in internal
    assert not [p.name for p in out.iterdir() if p.name.startswith("_")]

    wh = duckdb.connect(str(small_warehouse), read_only=True)
    fresh = duckdb.connect()
    fresh.execute("SET TimeZone = 'UTC'")
    for stmt in export.views_sql(out):
        fresh.execute(stmt)
    for name, q in QUERIES.items():
        a, b = wh.execute(q).df(), fresh.execute(q).df()
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=name)
    # the same columns, same types, in every view
    for view in ("message_facts", "call_facts", "attempt_facts"):
        cols_wh = {r[0]: r[1] for r in wh.execute(f"DESCRIBE {view}").fetchall()}
        cols_ex = {r[0]: r[1] for r in fresh.execute(f"DESCRIBE {view}").fetchall()}
        assert cols_wh == cols_ex, view


def test_analytics_functions_give_the_same_answer_over_the_export(tmp_path, small_warehouse):
    from switchboard.analytics import delivery

    out = tmp_path / "export"
    wh = duckdb.connect(str(small_warehouse), read_only=True)
    export.export_parquet(wh, out)
    fresh = duckdb.connect()
    fresh.execute("SET TimeZone = 'UTC'")
    for stmt in export.views_sql(out):
        fresh.execute(stmt)
    start, end = date(2026, 10, 18), SMALL_END.date()
    a = delivery.summary(wh, start=start, end=end)
    b = delivery.summary(fresh, start=start, end=end)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    a = delivery.delivery_by(wh, start=start, end=end, by="day")
    b = delivery.delivery_by(fresh, start=start, end=end, by="day")
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
