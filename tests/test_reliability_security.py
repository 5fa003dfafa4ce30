"""Reliability: security (issue 8).

* The dashboard's SQL box refuses writes, ATTACH, COPY … TO, EXPORT, INSTALL/LOAD, SET,
  PRAGMA and several statements at once, and reading any file (``read_*``, ``glob``,
  replacement scans) even inside the data folder: it can read only the attached
  warehouse. A refused or broken query is a :class:`SqlBoxError` carrying a message,
  never a traceback, and the warehouse is unchanged afterwards.
* Filter values are bound parameters: every analytics function given an injection
  attempt in every filter field returns exactly what it returns for an unknown,
  harmless value (the attempt is just a value that matches nothing) and the warehouse
  is unchanged. A grouping column or an ``extra`` filter column outside the allow-list
  is refused.
* No token in logs, errors or pages: see ``test_reliability_tokens.py``.
"""

from __future__ import annotations

import hashlib
import inspect
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from switchboard.analytics.filters import Filters

sql_box = pytest.importorskip("switchboard.dashboard.sql_box")

END = date(2026, 11, 20)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.browser_util import build_demo_warehouse

    return build_demo_warehouse(tmp_path_factory.mktemp("sec") / "warehouse.duckdb", end=END)


def _fingerprint(path: Path) -> tuple[str, dict[str, int]]:
    """File hash and row count of every table: proves nothing was written."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()
    return digest, counts


# --------------------------------------------------------------------------- the SQL box

REFUSED_STATEMENTS = [
    "INSERT INTO twilio_messages (sid, account_sid, status, source) VALUES ('SMx', 'ACx', 'sent', 'api')",
    "UPDATE twilio_messages SET status = 'delivered'",
    "DELETE FROM twilio_messages",
    "DROP TABLE twilio_messages",
    "CREATE TABLE evil AS SELECT 1",
    "CREATE OR REPLACE VIEW message_facts AS SELECT 1",
    "ALTER TABLE twilio_messages ADD COLUMN x INT",
    "TRUNCATE twilio_messages",
    "ATTACH '{tmp}/other.duckdb' AS other",
    "ATTACH ':memory:' AS mem",
    "DETACH warehouse",
    "COPY (SELECT * FROM twilio_messages) TO '{tmp}/leak.csv'",
    "COPY twilio_messages TO '{tmp}/leak.parquet' (FORMAT parquet)",
    "COPY twilio_messages FROM '{tmp}/in.csv'",
    "EXPORT DATABASE '{tmp}/export'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "FORCE INSTALL spatial",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET enable_external_access",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "CHECKPOINT",
    "VACUUM",
    "USE memory",
    "BEGIN TRANSACTION",
    "SELECT 1; DELETE FROM twilio_messages",
    "SELECT 1 /* ; */ ; ATTACH '{tmp}/x.duckdb' AS x",
    "",
    "   ",
]

FILE_READS = [
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_json_auto('{tmp}/x.json')",
    "SELECT * FROM read_parquet('{tmp}/x.parquet')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM '{tmp}/x.parquet'",
    "WITH t AS (SELECT 1) SELECT * FROM read_text('/proc/self/environ')",
    "FROM read_text('{warehouse}')",  # not even the warehouse file through a file reader
    "SELECT * FROM parquet_metadata('{tmp}/x.parquet')",
]


def _write_side_files(tmp: Path) -> None:
    """Real files the queries aim at, so a refusal is not just 'file not found'."""
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 42 AS secret) TO '{tmp}/x.parquet' (FORMAT parquet)")
    con.close()
    (tmp / "x.json").write_text('{"secret": 42}\n')
    (tmp / "in.csv").write_text("sid\nSMx\n")


@pytest.mark.parametrize("sql", REFUSED_STATEMENTS)
def test_sql_box_refuses_non_read_statements(warehouse: Path, tmp_path: Path, sql: str) -> None:
    before = _fingerprint(warehouse)
    _write_side_files(tmp_path)
    with pytest.raises(sql_box.SqlBoxError) as err:
        sql_box.run_query(warehouse, sql.format(tmp=tmp_path, warehouse=warehouse))
    assert str(err.value).strip(), "a refusal must say why"
    assert _fingerprint(warehouse) == before
    leaked = {p.name for p in tmp_path.iterdir()} - {"x.parquet", "x.json", "in.csv"}
    assert not leaked, f"the SQL box wrote {leaked}"


@pytest.mark.parametrize("sql", FILE_READS)
def test_sql_box_cannot_read_files(warehouse: Path, tmp_path: Path, sql: str) -> None:
    _write_side_files(tmp_path)
    with pytest.raises(sql_box.SqlBoxError) as err:
        sql_box.run_query(warehouse, sql.format(tmp=tmp_path, warehouse=warehouse))
    message = str(err.value)
    assert "root:" not in message and "42" not in message.split("line")[0]


def test_sql_box_cannot_turn_external_access_back_on(warehouse: Path) -> None:
    # A SELECT that calls a setter is still a SELECT: the locked configuration must hold.
    for sql in (
        "SELECT current_setting('enable_external_access') AS v",
        "SELECT value FROM duckdb_settings() WHERE name = 'enable_external_access'",
    ):
        frame = sql_box.run_query(warehouse, sql).frame
        assert str(frame.iloc[0, 0]).lower() == "false"
    con = sql_box.open_sandbox(warehouse)
    try:
        with pytest.raises(duckdb.Error):
            con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error):
            con.execute("CREATE TABLE warehouse.evil AS SELECT 1")  # READ_ONLY attach holds too
    finally:
        con.close()


def test_sql_box_reads_the_warehouse_and_reports_bad_sql(warehouse: Path) -> None:
    before = _fingerprint(warehouse)
    ok = sql_box.run_query(warehouse, "SELECT count(*) AS n FROM message_facts")
    assert int(ok.frame.loc[0, "n"]) > 0
    assert len(sql_box.run_query(warehouse, "FROM twilio_messages", max_rows=7).frame) == 7
    for bad in ("SELEC 1", "SELECT * FROM no_such_table", "SELECT 1/0::INT + 'x'", "SELECT * FROM message_facts WHERE"):
        with pytest.raises(sql_box.SqlBoxError) as err:
            sql_box.run_query(warehouse, bad)
        assert "Traceback" not in str(err.value) and str(err.value)
    assert _fingerprint(warehouse) == before


# --------------------------------------------------------------------------- bound filter values

INJECTIONS = [
    "US' OR '1'='1",
    "x'); DROP TABLE twilio_messages; --",
    "' UNION SELECT sid, sid, sid FROM twilio_messages --",
    "$f_start",
    "{where}",
    "\\'; ATTACH '/tmp/pwn.duckdb' AS p; --",
    "US\x00",
]


def _analytics_functions() -> list[tuple[str, object]]:
    """Every public ``fn(con, *, start, end, filters=…)`` in analytics whose other arguments have defaults."""
    import importlib
    import pkgutil

    from switchboard import analytics
    found = []
    for info in pkgutil.iter_modules(analytics.__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"switchboard.analytics.{info.name}")
        except Exception:  # noqa: BLE001, S112 - a module mid-rewrite by its owner must not break this test
            continue
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or fn.__module__ != module.__name__:
                continue
            params = inspect.signature(fn).parameters
            if not params or next(iter(params)) != "con" or not {"start", "end", "filters"} <= set(params):
                continue
            others = [p for n, p in list(params.items())[1:] if n not in ("start", "end", "filters")]
            if all(p.default is not inspect.Parameter.empty for p in others):
                found.append((f"{module.__name__}.{name}", fn))
    return found


def _normalise(frame: object) -> object:
    if isinstance(frame, pd.DataFrame):
        return frame.reset_index(drop=True).astype(str).to_dict("list")
    return repr(frame)


def test_injection_in_any_filter_is_just_a_value(warehouse: Path) -> None:
    functions = _analytics_functions()
    assert len(functions) >= 5, f"expected the analytics functions, found {[n for n, _ in functions]}"
    before = _fingerprint(warehouse)
    start = date(2026, 10, 1)
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    checked = 0
    try:
        for field in ("countries", "channels", "purposes", "templates"):
            harmless = Filters(**{field: ("no-such-value-zz",)})
            for name, fn in functions:
                try:
                    expected = _normalise(fn(con, start=start, end=END, filters=harmless))  # type: ignore[operator]
                except Exception as exc:  # noqa: BLE001  # pragma: no cover - a function that cannot take this filter at all
                    pytest.fail(f"{name} fails on a harmless unknown {field} value: {exc!r}")
                for attempt in INJECTIONS[:4]:
                    got = _normalise(fn(con, start=start, end=END, filters=Filters(**{field: (attempt,)})))  # type: ignore[operator]
                    assert got == expected, f"{name}: {field}={attempt!r} changed the result"
                    checked += 1
        # extra filters: allow-listed column, hostile value
        for name, fn in functions:
            for column in ("carrier", "error_category", "variant"):
                try:  # not every view has every allow-listed column: compare only where it applies
                    expected = _normalise(fn(con, start=start, end=END, filters=Filters(extra=((column, "no-such"),))))  # type: ignore[operator]
                except duckdb.BinderException:
                    continue
                for attempt in INJECTIONS[4:]:
                    got = _normalise(fn(con, start=start, end=END, filters=Filters(extra=((column, attempt),))))  # type: ignore[operator]
                    assert got == expected, f"{name}: extra {column}={attempt!r} changed the result"
    finally:
        con.close()
    assert checked >= 4 * 4 * 5
    assert _fingerprint(warehouse) == before


def test_filter_columns_come_from_an_allow_list() -> None:
    from switchboard.analytics.filters import where

    with pytest.raises(ValueError):
        where("message_facts", date(2026, 10, 1), END, Filters(extra=(("1=1; DROP TABLE x; --", "v"),)))
    with pytest.raises(ValueError):
        where("message_facts", date(2026, 10, 1), END, Filters(extra=(("to_number", "v"),)))
    sql, params = where("message_facts", date(2026, 10, 1), END, Filters(countries=("US' OR 1=1 --",)))
    assert "OR 1=1" not in sql
    assert any(v == ["US' OR 1=1 --"] for v in params.values())


def test_grouping_dimension_is_allow_listed(warehouse: Path) -> None:
    from switchboard.analytics import delivery

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        with pytest.raises(ValueError):
            delivery.delivery_by(con, start=date(2026, 10, 1), end=END, by="country_iso2; DROP TABLE twilio_messages")
    finally:
        con.close()
