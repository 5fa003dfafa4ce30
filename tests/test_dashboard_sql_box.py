"""The Data page's SQL box cannot write, attach, copy to files, read files or change its own settings;
every query gives a result or one readable error, and its limits hold even for single huge values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- statement kinds: EXPLAIN ANALYZE runs what it explains -------------------------------------

WRITES = [
    "INSERT INTO countries VALUES ('ZZ', 'ZZZ', 'Nowhere', NULL, NULL)",
    "DELETE FROM rejects", "UPDATE rejects SET reason = 'x'", "CREATE TABLE x AS SELECT 1",
    "DROP VIEW message_facts", "COPY message_facts TO '/tmp/switchboard_leak.csv'",
    "CREATE OR REPLACE MACRO m() AS 1", "ALTER TABLE rejects ADD COLUMN y INT",
]
READS = ["SELECT 1", "FROM message_facts LIMIT 1", "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
         "SELECT count(*) FROM call_facts"]
EXPLAINS = ["EXPLAIN", "EXPLAIN ANALYZE", "EXPLAIN ANALYSE", "EXPLAIN (ANALYZE)", "EXPLAIN (FORMAT json)",
            "EXPLAIN ANALYZE (FORMAT json)", "EXPLAIN (ANALYZE true, FORMAT text)"]
GAPS = st.sampled_from([" ", "\n", "\t", "  \n ", " /* note */ ", "\n-- why\n", " /* ( ) ; ' */ ", "/*é*/ "])


def _dress(words: str, gaps: list[str], upper: bool) -> str:
    """``words`` with each space replaced by a gap (whitespace or comment) and the case changed."""
    parts = words.split(" ")
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        out += gaps[i % len(gaps)] + part
    return out.upper() if upper else out.lower()


@settings(max_examples=150, deadline=None)
@given(prefix=st.sampled_from(EXPLAINS), statement=st.sampled_from(WRITES), gaps=st.lists(GAPS, min_size=1, max_size=4),
       lead=GAPS, upper=st.booleans(), semicolon=st.booleans())
def test_explain_of_a_write_is_refused_however_written(prefix: str, statement: str, gaps: list[str], lead: str,
                                                       upper: bool, semicolon: bool) -> None:
    sql = lead + _dress(f"{prefix} {statement}", gaps, upper) + (";" if semicolon else "")
    with pytest.raises(sql_box.SqlBoxError, match="Only read queries"):
        sql_box.check_statement(sql)


@settings(max_examples=100, deadline=None)
@given(prefix=st.sampled_from(["", *EXPLAINS]), statement=st.sampled_from(READS), gaps=st.lists(GAPS, min_size=1, max_size=4),
       lead=GAPS, semicolon=st.booleans())
def test_reads_and_their_explains_pass_however_written(prefix: str, statement: str, gaps: list[str], lead: str,
                                                       semicolon: bool) -> None:
    sql = lead + _dress(f"{prefix} {statement}".strip(), gaps, upper=False) + (";" if semicolon else "")
    assert sql_box.check_statement(sql)


@settings(max_examples=100, deadline=None)
@given(statement=st.sampled_from(WRITES + ["ATTACH '/tmp/x.duckdb' AS x", "SET threads = 1", "PRAGMA version",
                                           "CALL checkpoint()", "INSTALL httpfs", "EXPORT DATABASE '/tmp/x'"]),
       gaps=st.lists(GAPS, min_size=1, max_size=4), lead=GAPS, upper=st.booleans())
def test_writes_are_refused_however_written(statement: str, gaps: list[str], lead: str, upper: bool) -> None:
    with pytest.raises(sql_box.SqlBoxError):
        sql_box.check_statement(lead + _dress(statement, gaps, upper))


def test_explain_analyze_of_a_write_never_runs(wh: Path) -> None:
    with pytest.raises(sql_box.SqlBoxError, match="EXPLAIN of INSERT"):
        sql_box.run_query(wh, "EXPLAIN ANALYZE INSERT INTO rejects (reason) VALUES ('x')")
    result = sql_box.run_query(wh, "EXPLAIN ANALYZE SELECT count(*) FROM message_facts")
    assert "analyzed_plan" in set(result.frame.iloc[:, 0])


# --- values pandas or Arrow cannot take come back whole, as DuckDB writes them ------------------

UHUGEINT_MAX = 2**128 - 1
HUGEINT_MIN = -(2**127)


def test_values_round_trip_exactly(wh: Path) -> None:
    row = sql_box.run_query(wh, f"""
        SELECT '{UHUGEINT_MAX}'::UHUGEINT AS uhuge, '{HUGEINT_MIN}'::HUGEINT AS huge,
               12345678901234567890123456789012345678::DECIMAL(38,0) AS dec38,
               '-0.00000000000000000000000000000000000001'::DECIMAL(38,38) AS tiny,
               18446744073709551615::UBIGINT AS ubig, '-9223372036854775808'::BIGINT AS big,
               'infinity'::DOUBLE AS inf
    """).frame.iloc[0]
    assert int(row["uhuge"]) == UHUGEINT_MAX and int(row["huge"]) == HUGEINT_MIN
    assert Decimal(row["dec38"]) == Decimal("12345678901234567890123456789012345678")
    assert Decimal(row["tiny"]) == Decimal("-1E-38")
    assert int(row["ubig"]) == 2**64 - 1 and int(row["big"]) == -(2**63)
    assert row["inf"] == float("inf")


def test_types_pandas_cannot_take_are_shown_as_duckdb_text(wh: Path) -> None:
    frame = sql_box.run_query(wh, """
        SELECT union_value(num := 2) AS u, '0044-03-15 (BC)'::DATE AS bc, 'infinity'::DATE AS inf_day,
               '20261-11-15 10:00:00'::TIMESTAMP AS far, '-infinity'::TIMESTAMPTZ AS minus_inf,
               INTERVAL 100000 YEARS AS long_ago, '101'::BIT AS bits, [1, 2] AS list,
               {'a': union_value(k := 1)} AS nested, '12:00:00+02'::TIMETZ AS tz, 1 AS u
    """).frame
    assert list(frame.columns) == ["u", "bc", "inf_day", "far", "minus_inf", "long_ago", "bits", "list", "nested",
                                   "tz", "u (2)"]
    assert frame.iloc[0].to_dict() == {
        "u": "2", "bc": "0044-03-15 (BC)", "inf_day": "infinity", "far": "20261-11-15 10:00:00",
        "minus_inf": "-infinity", "long_ago": "100000 years", "bits": "101", "list": "[1, 2]",
        "nested": "{'a': 1}", "tz": "12:00:00+02", "u (2)": 1,
    }


def test_dates_in_range_stay_dates(wh: Path) -> None:
    row = sql_box.run_query(wh, "SELECT DATE '0001-01-01' AS first, TIMESTAMP '9999-12-31 23:59:59' AS last, "
                                "NULL::DATE AS nothing").frame.iloc[0]
    assert row["first"] == dt.date(1, 1, 1)
    assert row["last"] == dt.datetime(9999, 12, 31, 23, 59, 59)


def test_downloads_take_every_shown_type(wh: Path) -> None:
    frame = sql_box.run_query(wh, f"SELECT union_value(n := 1) AS a, '{UHUGEINT_MAX}'::UHUGEINT AS a, "
                                  "'0044-03-15 (BC)'::DATE AS d, 1.5::DECIMAL(38,2) AS m, 'x'::BLOB AS b").frame
    assert sql_box.to_csv_bytes(frame).startswith(b"a,a (2),d,m,b")
    assert sql_box.to_parquet_bytes(frame)


# --- limits DuckDB cannot outrun ------------------------------------------------------------------


def test_a_single_huge_value_hits_the_memory_limit(wh: Path) -> None:
    # Before the worker process: 3 GB resident and 12-51 s against a 1 GB limit and a 2 s timeout.
    with pytest.raises(sql_box.SqlBoxError, match="more than the SQL box's 1,024 MB of memory"):
        sql_box.run_query(wh, "SELECT repeat('x', 1500000000) AS x", timeout_s=120)
    with pytest.raises(sql_box.SqlBoxError, match="memory"):
        sql_box.run_query(wh, "SELECT length(repeat('x', 1500000000)) AS n", timeout_s=120)


@pytest.mark.slow
def test_a_query_that_ignores_interrupts_is_killed_at_the_timeout(wh: Path) -> None:
    # With memory to spare, building the string takes tens of seconds without looking at interrupt().
    with pytest.raises(sql_box.SqlBoxError, match="longer than the SQL box's 1 s"):
        sql_box.run_query(wh, "SELECT length(repeat('x', 1500000000)) AS n", timeout_s=1, memory_mb=4096)


def test_a_result_too_large_to_show_is_refused(wh: Path) -> None:
    with pytest.raises(sql_box.SqlBoxError, match="larger than the SQL box shows"):
        sql_box.run_query(wh, "SELECT repeat('x', 100000) AS x FROM range(500)", max_result_bytes=10_000_000)
    assert len(sql_box.run_query(wh, "SELECT repeat('x', 1000) AS x FROM range(500)").frame) == 500


def test_queries_beyond_the_worker_limit_wait_then_say_busy(wh: Path) -> None:
    held = [sql_box._workers.acquire(timeout=0) for _ in range(sql_box.MAX_WORKERS)]
    try:
        assert all(held)
        with pytest.raises(sql_box.SqlBoxError, match="already running 2 queries"):
            sql_box.run_query(wh, "SELECT 1", timeout_s=0.1)
    finally:
        for _ in held:
            sql_box._workers.release()
    assert len(sql_box.run_query(wh, "SELECT 1").frame) == 1
