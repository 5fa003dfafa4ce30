"""``switchboard build --engine spark|duckdb --lake DIR``: the facts and rollups built over a Parquet lake.

The lake (issue 20) is a folder, or on a cluster an object-store prefix, in hive layout:

* ``DIR/raw/<table>/…``: every base table of the warehouse, as ``switchboard export`` writes them
  (``twilio_messages/day=YYYY-MM-DD/…``, small tables as one ``data.parquet``);
* ``DIR/facts/<table>/…``: what the build produces, the same tables the DuckDB ingest builds
  (``_message_facts``, ``_attempt_facts``, every ``_daily_*`` rollup, ``_experiment_exposures``, …),
  partitioned by their UTC day column (``sent_day=…`` / ``start_day=…``).

**One definition of every transformation.** Both engines run the named SELECTs of ``ingest/facts.sql``
(``warehouse.fact_builds()``) over the scope views that read the raw tables whole
(``warehouse.full_scope_views()``). DuckDB runs them as written; Spark runs SQLGlot's DuckDB → Spark
transpile of the same text, plus three rewrites SQLGlot does not do (``to_spark``). Nothing is written
twice, so the equality tests (``tests/test_spark_build.py``) compare the two engines, not two copies.

``serve(lake, path)`` then makes a DuckDB warehouse from the lake (raw tables and built facts imported,
the analyst views and the rollup marks as the ingest writes them), on which every analytics function
and dashboard page runs unchanged.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from switchboard.core.errors import ConfigError
from switchboard.core.settings import Settings
from switchboard.ingest import export, incremental, warehouse

ENGINES = ("duckdb", "spark")
DAY_COLUMNS = ("sent_day", "start_day")  # a built table is partitioned by the first of these it has
_PARAM = "$conversion_window_minutes"


# ---------------------------------------------------------------- the build's SQL, from ingest/facts.sql


def fact_builds(conversion_window_minutes: int) -> list[tuple[str, str]]:
    """(table, SELECT) in build order (``warehouse.fact_builds``), DuckDB dialect, the window as a literal
    (a Spark temp view and a DuckDB view cannot hold a bound parameter; the value is an int, so the
    literal is safe)."""
    window = str(int(conversion_window_minutes))
    return [(name, sql.replace(_PARAM, window)) for name, sql in warehouse.fact_builds()]


def scope_views() -> dict[str, str]:
    """The scope views the builds read, each defined as its whole table (a full build)."""
    return warehouse.full_scope_views()


def comment_statements() -> list[str]:
    """facts.sql's ``-- @finish`` statements: the rollup marks the analytics check before reading a
    rollup (analytics._sql.rollup_ready), written on the served warehouse as the ingest writes them."""
    return list(warehouse.facts_definition().finish)


def self_reading(name: str, sql: str) -> bool:
    """A build that reads its own table appends to it (``_experiment_members``: numbers given once are
    kept): its current rows are an input, in ``raw/``, and the output is those rows plus the SELECT's."""
    return name in tables_read([sql])


def tables_read(sqls: list[str]) -> set[str]:
    """Every table name the statements read (to register only those raw tables with Spark)."""
    names: set[str] = set()
    for sql in sqls:
        tree = sqlglot.parse_one(sql, read="duckdb")
        ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
        names |= {t.name for t in tree.find_all(exp.Table)} - ctes
    return names


# ---------------------------------------------------------------- DuckDB -> Spark


def to_spark(sql: str) -> str:
    """SQLGlot's DuckDB → Spark transpile, after three rewrites of DuckDB constructs it passes through:

    * ``timezone('UTC', ts)`` → ``ts``: the Spark session runs in UTC (``spark_session``), so a
      timestamp cast to DATE is already the UTC day;
    * ``epoch(ts)`` → ``unix_micros(ts) / 1e6``: DuckDB's epoch keeps fractions of a second, SQLGlot's
      ``UNIX_TIMESTAMP`` would truncate them;
    * ``ASOF LEFT JOIN r ON r.k = l.k AND r.t >= l.t`` → a LEFT JOIN that keeps, per left row, the
      match with the smallest ``r.t`` (``row_number`` over a row id; Spark SQL has no ASOF join).
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    tree = tree.transform(_rewrite_functions)
    for select in list(tree.find_all(exp.Select)):
        if any(_is_asof(j) for j in select.args.get("joins") or []):
            _rewrite_asof(select)
    return tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)


def _rewrite_functions(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and node.name.lower() == "timezone":
        zone, value = node.expressions
        if not (isinstance(zone, exp.Literal) and zone.this.upper() == "UTC"):
            raise ValueError(f"only timezone('UTC', …) is transpiled, got {node.sql('duckdb')}")
        return value
    if isinstance(node, exp.TimeToUnix):
        micros = exp.Anonymous(this="UNIX_MICROS", expressions=[node.this])
        return exp.Paren(this=exp.Div(this=exp.cast(micros, "DOUBLE"), expression=exp.Literal.number("1e6")))
    return node


# SQLGlot's argument names ("from_"/"with_" since the keywords were renamed; "from"/"with" before)
_FROM = "from_" if "from_" in exp.Select.arg_types else "from"
_WITH = "with_" if "with_" in exp.Select.arg_types else "with"


def _is_asof(join: exp.Join) -> bool:
    return str(join.args.get("method") or "").upper() == "ASOF"


def _asof_order(on: exp.Expression, right: str) -> exp.Expression:
    """The right side's column of the ON clause's ``>=`` (the nearest match has the smallest value)."""
    for cmp in on.find_all(exp.GTE, exp.GT):
        for side in (cmp.this, cmp.expression):
            if isinstance(side, exp.Column) and side.table == right:
                return side.copy()
    raise ValueError("ASOF join without a right-side >= comparison: not transpiled")


def _rewrite_asof(select: exp.Select) -> None:
    """Turn ``select`` (in place) into an outer SELECT over itself, with the ASOF join made a LEFT JOIN
    and only the first match per left row kept. The left row id is the FROM source's
    ``monotonically_increasing_id()`` (joins before the ASOF are lookups, as in facts.sql; a join that
    multiplied rows would share one id, so the rewrite refuses any join before the ASOF but LEFT ones)."""
    joins = select.args["joins"]
    idx = next(i for i, j in enumerate(joins) if _is_asof(j))
    if any(j.side.upper() != "LEFT" for j in joins[:idx + 1]):
        raise ValueError("ASOF rewrite supports LEFT joins before the ASOF join only")
    join = joins[idx]
    join.set("method", None)
    right = join.this.alias_or_name
    order = [exp.Ordered(this=_asof_order(join.args["on"], right))]
    source = select.args[_FROM].this
    alias = source.alias_or_name
    row_id = exp.alias_(exp.Anonymous(this="MONOTONICALLY_INCREASING_ID", expressions=[]), "_asof_row")
    bare = source.copy()
    bare.set("alias", None)
    inner_src = exp.select(exp.Star(), row_id).from_(bare)
    source.replace(exp.Subquery(this=inner_src, alias=exp.TableAlias(this=exp.to_identifier(alias))))
    rn = exp.Window(this=exp.RowNumber(), partition_by=[exp.column("_asof_row", alias)], order=exp.Order(
        expressions=order))
    outputs = [e.alias_or_name for e in select.expressions]
    if "*" in outputs:
        raise ValueError("ASOF rewrite needs named output columns")
    order_by = select.args.get("order")
    select.set("order", None)
    ctes = select.args.get(_WITH)
    select.set(_WITH, None)
    inner = select.copy()
    inner.select(exp.alias_(rn, "_asof_rn"), copy=False)
    outer = exp.select(*[exp.column(c) for c in outputs]).from_(
        exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("_asof")))).where("_asof_rn = 1")
    if order_by is not None:
        outer.set("order", order_by.transform(lambda n: exp.column(n.name) if isinstance(n, exp.Column) else n))
    outer.set(_WITH, ctes)
    for key in set(select.args) | set(outer.args):
        select.set(key, outer.args.get(key))


# ---------------------------------------------------------------- the lake


@dataclass
class BuildReport:
    engine: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def raw_dir(lake: Path) -> Path:
    return Path(lake) / "raw"


def facts_dir(lake: Path) -> Path:
    return Path(lake) / "facts"


def raw_tables(con: duckdb.DuckDBPyConnection, window: int = 30) -> list[str]:
    """The build's inputs: every base table but the internal ``_…`` ones, plus the current rows of the
    tables a build appends to (their numbers are kept, ``self_reading``)."""
    state = {name for name, sql in fact_builds(window) if self_reading(name, sql)}
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary ORDER BY 1").fetchall()]
    return [t for t in tables if not t.startswith("_") or t in state]


def export_raw(con: duckdb.DuckDBPyConnection, lake: Path) -> dict[str, int]:
    """Write the warehouse's input tables to ``lake/raw`` (the export's hive layout)."""
    return export.export_parquet(con, raw_dir(lake), names=raw_tables(con))


def ensure_state(lake: Path, window: int = 30) -> None:
    """A lake fed by another pipeline may lack the append tables' current rows: start them empty, with
    the columns ingest/schema.sql gives them (written by DuckDB, so both engines read the same file)."""
    missing = [n for n, sql in fact_builds(window) if self_reading(n, sql) and not (raw_dir(lake) / n).is_dir()]
    if not missing:
        return
    con = duckdb.connect()
    try:
        for stmt in warehouse._statements(warehouse.SCHEMA_SQL):
            if any(re.search(rf"\bTABLE IF NOT EXISTS {n}\b", stmt) for n in missing):
                con.execute(stmt)
        export.export_parquet(con, raw_dir(lake), names=missing)
    finally:
        con.close()


def _glob(folder: Path) -> str:
    return str(folder / "**" / "*.parquet")


def day_column(columns: list[str]) -> str | None:
    return next((c for c in DAY_COLUMNS if c in columns), None)


def _scopes_for(sql: str, created: set[str]) -> list[tuple[str, str]]:
    """The scope views ``sql`` reads that are not created yet. A view is created just before its first
    reader, when the table it reads (a raw table, or a fact built earlier) exists."""
    read = tables_read([sql])
    return [(n, v) for n, v in scope_views().items() if n in read and n not in created]


# ---------------------------------------------------------------- engine: DuckDB


def build_duckdb(lake: Path, *, conversion_window_minutes: int = 30,
                 on_table: Callable[[str, int], None] | None = None) -> BuildReport:
    """The reference build: DuckDB over the raw lake, each table written to ``lake/facts``."""
    report = BuildReport("duckdb")
    ensure_state(lake, conversion_window_minutes)
    tmp = Path(tempfile.mkdtemp(prefix="switchboard-build-"))
    con = warehouse.connect(tmp / "build.duckdb")  # a file, so a big build spills instead of failing
    created: set[str] = set()
    try:
        for stmt in export.views_sql(raw_dir(lake)):
            con.execute(stmt)
        for name, sql in fact_builds(conversion_window_minutes):
            started = time.perf_counter()
            for view, definition in _scopes_for(sql, created):
                con.execute(f'CREATE OR REPLACE VIEW "{view}" AS {definition}')
                created.add(view)
            if self_reading(name, sql):  # current rows (a view over raw/) + the SELECT's new ones
                con.execute(f'CREATE OR REPLACE TABLE "_new{name}" AS {sql}')
                con.execute(f'DROP VIEW "{name}"')
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM read_parquet($g) '
                            f'UNION ALL BY NAME SELECT * FROM "_new{name}"', {"g": _glob(raw_dir(lake) / name)})
            else:
                con.execute(f'CREATE OR REPLACE TABLE "{name}" AS {sql}')
            report.rows[name] = _write_duckdb(con, name, facts_dir(lake) / name)
            report.seconds[name] = time.perf_counter() - started
            if on_table:
                on_table(name, report.rows[name])
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _write_duckdb(con: duckdb.DuckDBPyConnection, name: str, target: Path) -> int:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    n = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
    day = day_column([r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()])
    if day and n:
        con.execute(f'COPY "{name}" TO $t (FORMAT parquet, PARTITION_BY ({day}), OVERWRITE_OR_IGNORE)',
                    {"t": str(target)})
    else:  # an empty table still gets a file, so readers see its columns
        con.execute(f'COPY "{name}" TO $t (FORMAT parquet)', {"t": str(target / "data.parquet")})
    return int(n)


# ---------------------------------------------------------------- engine: Spark


def spark_session(master: str | None = "local[2]", *, shuffle_partitions: int | None = 4):
    """A Spark session for the build. ``master=None`` keeps what spark-submit configured (a cluster);
    the settings below are the ones the build's results depend on, on any cluster."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("switchboard-build")
    if master:
        builder = builder.master(master).config("spark.ui.enabled", "false")
        builder = builder.config("spark.driver.memory", os.environ.get("SWITCHBOARD_SPARK_DRIVER_MEMORY", "2g"))
    if master and shuffle_partitions:  # locally only: on a cluster spark-submit's --conf decides
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    return (builder
            .config("spark.sql.session.timeZone", "UTC")  # days are UTC days (to_spark drops timezone('UTC'))
            .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")  # not INT96: DuckDB reads TZ
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate())


def build_spark(spark, lake: str | Path, *, conversion_window_minutes: int = 30,
                on_table: Callable[[str, int], None] | None = None) -> BuildReport:
    """The same build on Spark: raw lake → temp views → each transpiled SELECT → ``lake/facts``.

    Each built table is written, then read back as the temp view the next SELECTs read (as DuckDB's
    CREATE TABLE materialises it), so a table is computed once. ``lake`` may be a URI (``s3a://…``)."""
    report = BuildReport("spark")
    if "://" not in str(lake):
        ensure_state(Path(lake), conversion_window_minutes)
    lake = str(lake).rstrip("/")
    builds = fact_builds(conversion_window_minutes)
    built = {n for n, sql in builds if not self_reading(n, sql)}
    inputs = tables_read([sql for _, sql in builds] + list(scope_views().values()))
    for name in sorted(inputs - built - set(scope_views())):
        _register_raw(spark, f"{lake}/raw/{name}", name)
    created: set[str] = set()
    for name, sql in builds:
        started = time.perf_counter()
        for view, definition in _scopes_for(sql, created):
            spark.sql(to_spark(definition)).createOrReplaceTempView(view)
            created.add(view)
        df = spark.sql(to_spark(sql))
        if self_reading(name, sql):
            df = spark.table(name).unionByName(df)
        report.rows[name] = _write_spark(spark, df, f"{lake}/facts/{name}", name)
        report.seconds[name] = time.perf_counter() - started
        if on_table:
            on_table(name, report.rows[name])
    return report


def _write_spark(spark, df, target: str, name: str) -> int:
    """Write ``df`` partitioned by its day (one file when it has none), then make the written table the
    temp view later SELECTs read."""
    day = day_column(df.columns)
    if day:
        df.write.mode("overwrite").partitionBy(day).parquet(target)
    else:
        df.coalesce(1).write.mode("overwrite").parquet(target)
    back = spark.read.parquet(target)
    back.createOrReplaceTempView(name)
    return back.count()


def _register_raw(spark, path: str, name: str) -> None:
    df = spark.read.option("basePath", path).parquet(path)
    extra = export.DAY_COLUMN.get(name)  # the partition column the export added
    if extra and extra in df.columns:
        df = df.drop(extra)
    df.createOrReplaceTempView(name)


# ---------------------------------------------------------------- serving on DuckDB


def serve(lake: Path, path: Path, *, conversion_window_minutes: int = 30) -> Path:
    """A DuckDB warehouse from the lake: raw tables and built facts imported, views and marks as the
    ingest writes them. Each fact table takes the DuckDB build's exact column order and types (its
    SELECT run with LIMIT 0 over the raw tables), then the lake's rows BY NAME, whichever engine built
    them. Written beside ``path`` and renamed into place (readers of the old file keep it)."""
    lake, path = Path(lake), Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    con = warehouse.connect(tmp)
    created: set[str] = set()
    try:
        for folder in sorted(p for p in raw_dir(lake).iterdir() if p.is_dir()):
            table = _table_name(folder.name)
            col = export.DAY_COLUMN.get(table)
            exclude = f" EXCLUDE ({col})" if col else ""
            con.execute(f'CREATE TABLE "{table}" AS SELECT *{exclude} FROM '
                        "read_parquet($g, hive_partitioning = true, union_by_name = true)",
                        {"g": _glob(raw_dir(lake) / folder.name)})
        for name, sql in fact_builds(conversion_window_minutes):
            for view, definition in _scopes_for(sql, created):
                con.execute(f'CREATE OR REPLACE TEMP VIEW "{view}" AS {definition}')
                created.add(view)
            _serve_table(con, lake, name, sql)
        for stmt in comment_statements():
            con.execute(stmt)
        # what the ingest runs after the facts, the same code: the analyst views, then the replies
        # (issue 18's _response_facts: built on DuckDB from the served tables, they are not in facts.sql)
        incremental._run_views(con, changed=True)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, path)
    return path


def _table_name(name: str) -> str:
    """A lake folder's name as a table name: a plain identifier, or the lake is not ours."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigError(f"the lake's raw/ holds a folder {name!r} that is not a table name: remove it")
    return name


def _serve_table(con: duckdb.DuckDBPyConnection, lake: Path, name: str, sql: str) -> None:
    folder = facts_dir(lake) / name
    if not folder.is_dir():
        raise ConfigError(f"the lake {lake} has no built table {name}: run 'switchboard build --lake {lake}' first")
    if self_reading(name, sql):  # the raw table gave it its columns; the lake has its rows after the build
        con.execute(f'DELETE FROM "{name}"')
    else:
        con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM ({sql}) LIMIT 0')
    cols = [r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()]
    day = day_column(cols)
    order = f" ORDER BY {day}" if day else ""  # day-clustered row groups, as the ingest's ORDER BY gives
    con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM '
                f"read_parquet($g, hive_partitioning = true, union_by_name = true){order}",
                {"g": _glob(folder)})


# ---------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=ENGINES, default="duckdb",
                        help="engine that builds the facts and rollups (default: duckdb)")
    parser.add_argument("--lake", required=True, metavar="DIR",
                        help="lake folder: raw/ (input, hive layout) and facts/ (output); on a cluster, "
                             "an object-store URI such as s3a://bucket/switchboard")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="warehouse folder whose published warehouse is exported to DIR/raw (default: data/)")
    parser.add_argument("--no-export", action="store_true",
                        help="use DIR/raw as it is (your pipeline writes it) instead of exporting the warehouse")
    parser.add_argument("--serve", type=Path, default=None, metavar="FILE",
                        help="also write a DuckDB warehouse from the lake (default: DIR/warehouse.duckdb; "
                             "'-' for none)")
    parser.add_argument("--master", default=None,
                        help="Spark master (default: local[2], or what spark-submit set)")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(data_dir=args.data_dir)
    remote = "://" in args.lake
    if remote and args.engine != "spark":
        raise ConfigError("--lake as a URI needs --engine spark (the DuckDB build reads a local folder)")
    lake = args.lake if remote else Path(args.lake)
    if not args.no_export:
        if remote:
            raise ConfigError("with a remote --lake, write DIR/raw with your pipeline and pass --no-export")
        _export(settings, lake)
    elif not remote and not raw_dir(lake).is_dir():
        raise ConfigError(f"{raw_dir(lake)} does not exist: drop --no-export to export the warehouse into it")
    report = _build(args, lake, settings.conversion_window_minutes)
    for name, n in report.rows.items():
        print(f"{name:<30} {n:>12,} rows  {report.seconds[name]:7.1f} s")
    print(f"Built {len(report.rows)} tables with {report.engine} in {report.total_seconds():.1f} s")
    serve_to = None if remote or str(args.serve) == "-" else (args.serve or Path(lake) / "warehouse.duckdb")
    if serve_to:
        serve(Path(lake), serve_to, conversion_window_minutes=settings.conversion_window_minutes)
        print(f"Served on DuckDB: {serve_to}  (open read-only; every analytics function runs on it)")
    return 0


def _export(settings: Settings, lake: Path) -> None:
    if not settings.warehouse_path.exists():
        raise ConfigError(f"no warehouse at {settings.warehouse_path}: run 'switchboard ingest' first, "
                          "or pass --no-export with the raw tables already in DIR/raw")
    con = warehouse.connect(settings.warehouse_path, read_only=True)
    try:
        counts = export_raw(con, lake)
    finally:
        con.close()
    print(f"Exported {len(counts)} raw tables to {raw_dir(lake)}")


def _build(args: argparse.Namespace, lake, window: int) -> BuildReport:
    if args.engine == "duckdb":
        return build_duckdb(lake, conversion_window_minutes=window)
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError("--engine spark needs PySpark: run 'make setup' (it installs the spark extra), "
                          "or pip install 'switchboard[spark]'") from None
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        raise ConfigError("--engine spark needs Java 17: run 'make java' "
                          "(apt-get install openjdk-17-jre-headless) or set JAVA_HOME")
    spark = spark_session(args.master or (None if _under_spark_submit() else "local[2]"))
    try:
        return build_spark(spark, lake, conversion_window_minutes=window)
    finally:
        if not _under_spark_submit():
            spark.stop()


def _under_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands the Python driver its gateway: keep its master then."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def main(argv: list[str] | None = None) -> int:
    """``spark-submit …/lake_build.py --engine spark --lake s3a://…`` runs this (no switchboard CLI needed)."""
    parser = argparse.ArgumentParser(prog="lake_build", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
