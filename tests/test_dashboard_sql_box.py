"""The Data page's SQL box cannot write, attach, copy to files, read files or change its own settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.dashboard import sql_box
from tests.browser_util import build_demo_warehouse


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_warehouse(tmp_path_factory.mktemp("sqlbox") / "warehouse.duckdb")


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM message_facts",
    "with x as (select * from call_facts) select count(*) from x",
    "FROM attempt_facts LIMIT 5",
    "DESCRIBE message_facts",
    "SHOW TABLES",
    "SUMMARIZE SELECT cost_usd FROM message_facts",
    "EXPLAIN SELECT * FROM message_facts",
    "select 1;",
])
def test_read_queries_run(wh: Path, sql: str) -> None:
    result = sql_box.run_query(wh, sql)
    assert len(result.frame) >= 1


@pytest.mark.parametrize("sql", [
    "CREATE TABLE x AS SELECT 1",
    "INSERT INTO countries VALUES ('ZZ', 'ZZZ', 'Nowhere', NULL, NULL)",
    "DELETE FROM rejects",
    "UPDATE rejects SET reason = 'x'",
    "DROP VIEW message_facts",
    "COPY message_facts TO '/tmp/switchboard_leak.csv'",
    "EXPORT DATABASE '/tmp/switchboard_leak'",
    "ATTACH '/tmp/other.duckdb' AS other",
    "DETACH warehouse",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "PRAGMA enable_profiling",
    "CALL checkpoint()",
    "USE memory",
    "SELECT 1; SELECT 2",
    "",
])
def test_everything_else_is_refused_before_running(wh: Path, sql: str) -> None:
    with pytest.raises(sql_box.SqlBoxError):
        sql_box.check_statement(sql)
    with pytest.raises(sql_box.SqlBoxError):
        sql_box.run_query(wh, sql)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_parquet('/tmp/*.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_json_auto('https://example.com/x.json')",
])
def test_selects_cannot_reach_files_or_network(wh: Path, sql: str) -> None:
    with pytest.raises(sql_box.SqlBoxError, match="(?i)permission|disabled|does not exist"):
        sql_box.run_query(wh, sql)


def test_bad_query_gives_duckdbs_message(wh: Path) -> None:
    with pytest.raises(sql_box.SqlBoxError, match="nope"):
        sql_box.run_query(wh, "SELECT nope FROM message_facts")
    with pytest.raises(sql_box.SqlBoxError, match="(?i)syntax"):
        sql_box.run_query(wh, "SELEC 1")


def test_row_limit_and_truncation_flag(wh: Path) -> None:
    result = sql_box.run_query(wh, "SELECT * FROM range(50000)", max_rows=1000)
    assert len(result.frame) == 1000 and result.truncated
    result = sql_box.run_query(wh, "SELECT * FROM range(10)", max_rows=1000)
    assert len(result.frame) == 10 and not result.truncated


def test_runaway_query_is_stopped(wh: Path) -> None:
    with pytest.raises(sql_box.SqlBoxError, match="longer than"):
        sql_box.run_query(wh, "SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b", timeout_s=0.5)


def test_sandbox_settings_are_locked(wh: Path) -> None:
    con = sql_box.open_sandbox(wh)
    try:
        with pytest.raises(Exception, match="(?i)locked"):
            con.execute("SET enable_external_access = true")
        assert con.execute("SELECT current_setting('enable_external_access')").fetchone()[0] is False
    finally:
        con.close()


def test_downloads_round_trip(wh: Path) -> None:
    import io

    import pandas as pd

    frame = sql_box.run_query(wh, "SELECT country_name, count(*) AS n FROM message_facts GROUP BY 1").frame
    assert pd.read_csv(io.BytesIO(sql_box.to_csv_bytes(frame)))["n"].sum() == frame["n"].sum()
    assert pd.read_parquet(io.BytesIO(sql_box.to_parquet_bytes(frame))).equals(frame)
