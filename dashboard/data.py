"""The dashboard's only door to the warehouse.

* Opens the **published snapshot** (``Settings.warehouse_path``) read-only, never
  the ingest's own file, so the dashboard never competes for DuckDB's writer lock
  (docs/ARCHITECTURE.md, "one writer, many readers").
* Notices a new snapshot by its *version* (inode, mtime, size): ingest publishes by
  rename, so a new file has a new inode. The next query opens the new file; no
  restart is needed. Sessions still holding the old connection keep reading the old
  inode safely until they finish.
* Never lets a lock or "file missing" error reach the page: it raises
  :class:`WarehouseUnavailable`, whose message names the command to run.
* Caches analytics results with ``st.cache_data`` keyed by function, arguments,
  filters and snapshot version, with the TTL from ``Settings.cache_ttl_seconds``.

Pages call :func:`run` with an ``analytics`` function and draw what comes back; the
few bookkeeping queries the Data page and the sidebar need (freshness, filter
choices) live here, not in pages.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import streamlit as st

from switchboard.analytics.filters import Filters
from switchboard.core.errors import SwitchboardError
from switchboard.core.plausible import EARLIEST_DAY, FUTURE_SLACK_DAYS
from switchboard.core.settings import Settings
from switchboard.core.twilio import find_credentials

GET_DATA_HINT = (
    "Run `switchboard ingest` to load your Twilio history (or `make demo` for the simulated "
    "sandbox world), then reload this page."
)


class WarehouseUnavailable(SwitchboardError, RuntimeError):
    """The snapshot is missing, being replaced, or cannot be opened: show ``str(err)`` to the user."""


@dataclass(frozen=True)
class Snapshot:
    """Identifies one published warehouse file: a new ingest gives a new version."""

    path: str
    inode: int
    mtime_ns: int
    size: int

    @property
    def key(self) -> tuple[str, int, int, int]:
        return (self.path, self.inode, self.mtime_ns, self.size)


def settings() -> Settings:
    return Settings.from_env()


def current_snapshot(path: Path | None = None) -> Snapshot:
    """The published snapshot's version, or :class:`WarehouseUnavailable` when there is none."""
    path = Path(path or settings().warehouse_path)
    try:
        st_ = os.stat(path)
    except FileNotFoundError:
        raise WarehouseUnavailable(
            f"No warehouse yet: `{path}` does not exist. {GET_DATA_HINT}"
        ) from None
    return Snapshot(str(path), st_.st_ino, st_.st_mtime_ns, st_.st_size)


# One open read-only connection per snapshot file path, replaced when its version changes.
_lock = threading.Lock()
_connections: dict[str, tuple[Snapshot, duckdb.DuckDBPyConnection]] = {}


ALIAS = "warehouse"


def _open(snap: Snapshot) -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB that ATTACHes this snapshot read-only.

    Not ``duckdb.connect(path)``: DuckDB caches one database instance per path inside a
    process, so after ingest renames a new snapshot into place, connect(path) would
    hand back the instance still reading the *old* inode while any cursor on it lives.
    A fresh in-memory instance + ATTACH opens the file the path names now.
    """
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH '{snap.path.replace(chr(39), chr(39) * 2)}' AS {ALIAS} (READ_ONLY)")
    except duckdb.Error as err:  # lock held by a writer, half-copied file, …
        con.close()
        raise WarehouseUnavailable(
            f"The warehouse `{snap.path}` cannot be opened right now ({type(err).__name__}). "
            "If an ingest is publishing a new snapshot, wait a few seconds and reload. "
            "Only `switchboard ingest` should write it; analysts should open it read-only. "
            f"If it is missing or broken: {GET_DATA_HINT}"
        ) from None
    return con


def cursor(snap: Snapshot | None = None) -> duckdb.DuckDBPyConnection:
    """A fresh cursor on the current snapshot (one per query: DuckDB connections are not thread-safe)."""
    snap = snap or current_snapshot()
    with _lock:
        held = _connections.get(snap.path)
        if held is None or held[0] != snap:
            # The old connection is not closed here: another session may be mid-query on it.
            # Dropping our reference lets it close once the last cursor is gone.
            _connections[snap.path] = (snap, _open(snap))
        cur = _connections[snap.path][1].cursor()
    cur.execute(f"USE {ALIAS}")
    cur.execute("SET TimeZone = 'UTC'")
    return cur


def forget_connections() -> None:
    """Drop every held connection (tests, and before a test rewrites a warehouse file)."""
    with _lock:
        _connections.clear()
        _recent.clear()
        _seen.clear()
    st.cache_data.clear()


# --- cached analytics calls --------------------------------------------------------------------


def _resolve(dotted: str) -> Callable[..., Any]:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _freeze(value: Any) -> Any:
    """Make arguments hashable and cache-key friendly (Filters → tagged tuple)."""
    if isinstance(value, Filters):
        return ("__filters__", dataclasses.astuple(value))
    if isinstance(value, list):
        return ("__list__", tuple(_freeze(v) for v in value))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "__filters__":
        return Filters(*value[1])
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "__list__":
        return [_thaw(v) for v in value[1]]
    return value


@st.cache_data(ttl=Settings.from_env().cache_ttl_seconds, show_spinner=False, max_entries=4096)
def _cached_call(fn: str, snapshot_key: tuple, args: tuple, kwargs: tuple) -> Any:
    snap = Snapshot(*snapshot_key)
    cur = cursor(snap)
    try:
        return _resolve(fn)(cur, *[_thaw(a) for a in args], **{k: _thaw(v) for k, v in kwargs})
    finally:
        cur.close()


def run(fn: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn(con, *args, **kwargs)`` on the current snapshot, cached per snapshot version.

    ``fn`` is an analytics function (or its dotted name). Results are shared between
    sessions until the TTL expires or a new snapshot is published.
    """
    name = fn if isinstance(fn, str) else f"{fn.__module__}.{fn.__qualname__}"
    snap = current_snapshot()
    call = (name, tuple(_freeze(a) for a in args), tuple(sorted((k, _freeze(v)) for k, v in kwargs.items())))
    _remember(snap, call)
    result = _cached_call(name, snap.key, call[1], call[2])
    if name == f"{__name__}._bounds":
        _last_days[snap.key] = result.last_day
    return result


# --- warming the cache when a new snapshot appears -----------------------------------------------
# After an ingest publishes, every view is a cache miss. The calls viewers made recently are
# replayed on the new snapshot in a background thread, so the next visitor finds them warm.
# Views that follow the data (their end is the last day with data, the sidebar's default)
# move forward with it.

PREWARM_MAX_CALLS = 64
_recent: dict[str, dict[tuple, None]] = {}  # path -> recent calls (insertion-ordered set)
_seen: dict[str, tuple] = {}  # path -> last snapshot key seen
_last_days: dict[tuple, date | None] = {}  # snapshot key -> its last day with data
_prewarm_threads: list[threading.Thread] = []


def _remember(snap: Snapshot, call: tuple) -> None:
    with _lock:
        previous = _seen.get(snap.path)
        _seen[snap.path] = snap.key
        recent = _recent.setdefault(snap.path, {})
        replay = list(recent) if previous is not None and previous != snap.key else None
        recent.pop(call, None)
        recent[call] = None
        while len(recent) > PREWARM_MAX_CALLS:
            recent.pop(next(iter(recent)))
    if replay:
        thread = threading.Thread(target=_prewarm, args=(snap, previous, replay), name="switchboard-prewarm",
                                  daemon=True)
        _prewarm_threads.append(thread)
        thread.start()


def _prewarm(snap: Snapshot, previous: tuple, calls: list[tuple]) -> None:
    try:
        bounds = _cached_call(f"{__name__}._bounds", snap.key, (), ())
    except Exception:  # noqa: BLE001 - warming is best effort; the page will say what is wrong
        return
    old_last, new_last = _last_days.get(previous), bounds.last_day
    rolling = old_last is not None and new_last is not None and new_last != old_last
    delta = (new_last - old_last) if rolling else None
    for name, args, kwargs in reversed(calls):  # most recent first
        values = dict(kwargs)
        if rolling and values.get("end") == old_last:
            values = {k: (v + delta if k in ("start", "end") and isinstance(v, date) else v)
                      for k, v in values.items()}
        try:
            _cached_call(name, snap.key, args, tuple(sorted(values.items())))
        except Exception:  # noqa: BLE001, S112 - best effort, see above
            continue


def wait_for_prewarm(timeout: float = 60) -> None:
    """Block until background warming finished (tests, benchmarks)."""
    for thread in _prewarm_threads:
        thread.join(timeout)
    _prewarm_threads[:] = [t for t in _prewarm_threads if t.is_alive()]


# --- bookkeeping the sidebar and the Data page need ----------------------------------------------
# These read the warehouse's own tables (not analytics): what exists, how fresh it is.


# Days the dashboard shows: from PLAUSIBLE_FIRST to today (UTC) + 1 day, the window ingest's
# plausibility bounds use (ingest/bounds.py: EARLIEST, FUTURE_SLACK). A warehouse an analyst wrote
# may hold a sent_at in year 20261, year 1 or 'infinity'; such rows are left out of every page
# (their dates would break the date picker and every period), and the sidebar says how many.
PLAUSIBLE_FIRST = EARLIEST_DAY  # core.plausible: the same window as ingest's bounds


@dataclass(frozen=True)
class DataBounds:
    """First and last day with data inside the plausible window, row counts, and what lies outside it."""

    first_day: date | None
    last_day: date | None
    messages: int
    calls: int
    attempts: int
    window_first: date = PLAUSIBLE_FIRST
    window_last: date | None = None
    outside_messages: int = 0
    outside_calls: int = 0
    outside_attempts: int = 0

    @property
    def empty(self) -> bool:
        return self.first_day is None

    @property
    def outside(self) -> int:
        """Rows dated outside the window: on no page."""
        return self.outside_messages + self.outside_calls + self.outside_attempts


def _bounds(con: duckdb.DuckDBPyConnection) -> DataBounds:
    # current_date is UTC (cursor() sets the time zone). Undated rows (a message not sent yet has
    # no date_sent) are on no page either, but they are normal: only dated rows count as outside.
    # The usual case costs a min/max per view (10M rows: ~130 ms under load); only a warehouse with
    # days outside the window pays for counting them (~5x).
    row = con.execute(
        """
        WITH d AS (
            SELECT min(sent_day) AS lo, max(sent_day) AS hi FROM message_facts
            UNION ALL SELECT min(start_day), max(start_day) FROM call_facts
            UNION ALL SELECT min(sent_day), max(sent_day) FROM attempt_facts
        ), w AS (SELECT (current_date + to_days($slack))::DATE AS hi)
        SELECT min(d.lo) IS NULL OR (min(d.lo) >= $first AND max(d.hi) <= any_value(w.hi)),
               min(d.lo), max(d.hi), (SELECT count(*) FROM message_facts), (SELECT count(*) FROM call_facts),
               (SELECT count(*) FROM attempt_facts), (SELECT hi FROM w)
        FROM d, w
        """,
        {"first": PLAUSIBLE_FIRST, "slack": FUTURE_SLACK_DAYS},
    ).fetchall()[0]
    if row[0]:
        return DataBounds(row[1], row[2], int(row[3]), int(row[4]), int(row[5]), PLAUSIBLE_FIRST, row[6])
    return _bounds_outside(con)


# One aggregate per view (no UNION of every row): min/max of the plausible days, count and count outside.
_BOUNDS_PART = """
    SELECT min({day}) FILTER (WHERE {day} BETWEEN w.lo AND w.hi) AS first_day,
           max({day}) FILTER (WHERE {day} BETWEEN w.lo AND w.hi) AS last_day,
           count(*) AS n, count(*) FILTER (WHERE NOT ({day} BETWEEN w.lo AND w.hi)) AS outside
    FROM {view}, w
"""


def _bounds_outside(con: duckdb.DuckDBPyConnection) -> DataBounds:
    """:func:`_bounds` of a warehouse with days outside the plausible window: those are counted, not shown."""
    parts = {"m": ("message_facts", "sent_day"), "c": ("call_facts", "start_day"), "a": ("attempt_facts", "sent_day")}
    ctes = ", ".join(f"{key} AS ({_BOUNDS_PART.format(view=view, day=day)})" for key, (view, day) in parts.items())
    row = con.execute(
        f"""
        WITH w AS (SELECT $first::DATE AS lo, (current_date + to_days($slack))::DATE AS hi), {ctes}
        SELECT least(m.first_day, c.first_day, a.first_day), greatest(m.last_day, c.last_day, a.last_day),
               m.n, c.n, a.n, w.hi, m.outside, c.outside, a.outside
        FROM m, c, a, w
        """,
        {"first": PLAUSIBLE_FIRST, "slack": FUTURE_SLACK_DAYS},
    ).fetchall()[0]
    return DataBounds(row[0], row[1], int(row[2]), int(row[3]), int(row[4]), PLAUSIBLE_FIRST, row[5],
                      int(row[6]), int(row[7]), int(row[8]))


def data_bounds() -> DataBounds:
    """First and last day with data, and row counts; ``.empty`` when nothing was ingested yet."""
    return run(_bounds)


def _filter_options(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame | list[str]]:
    # One scan per view: distinct keys first, names from the small countries dimension after.
    countries = con.execute(
        """
        WITH present AS (
            SELECT DISTINCT country_iso2 FROM message_facts WHERE country_iso2 IS NOT NULL
            UNION SELECT DISTINCT country_iso2 FROM call_facts WHERE country_iso2 IS NOT NULL
        )
        SELECT p.country_iso2 AS iso2, coalesce(c.name, p.country_iso2) AS name
        FROM present p LEFT JOIN countries c ON c.iso2 = p.country_iso2
        ORDER BY name
        """
    ).df()
    # Every send-log record is an attempt, so attempt_facts holds every campaign id the
    # message and call facts can carry. One small DISTINCT per column, NULLs skipped in the scan:
    # DuckDB then skips the row groups where a column is all NULL (campaign_id, outside test
    # campaigns), where one list(DISTINCT ...) of four columns hashed every row (10M: 150 -> 60 ms).
    pairs = con.execute(
        " UNION ALL ".join(
            f"SELECT '{key}' AS k, v FROM (SELECT DISTINCT {column} AS v FROM attempt_facts "
            f"WHERE {column} IS NOT NULL)"
            for key, column in _ATTEMPT_CHOICES.items()
        ) + " ORDER BY k, v"
    ).fetchall()
    choices: dict[str, list[str]] = {key: [] for key in _ATTEMPT_CHOICES}
    for key, value in pairs:
        choices[key].append(value)
    return {"countries": countries, **choices}


# filter_options key -> attempt_facts column (a fixed allow-list: these names go into the SQL)
_ATTEMPT_CHOICES = {"channels": "channel", "purposes": "purpose", "templates": "template_id",
                    "campaigns": "campaign_id"}


def filter_options() -> dict[str, Any]:
    """Choices for the sidebar: countries (iso2, name), channels, purposes, templates and campaigns in the data."""
    return run(_filter_options)


def country_names() -> dict[str, str]:
    """ISO-2 → country name for the countries in the warehouse (for tables that carry codes only)."""
    countries = filter_options()["countries"]
    return dict(zip(countries["iso2"], countries["name"], strict=True))


def _freshness(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    # ingest_state holds a cursor per Twilio resource and account ("messages:AC…", "calls:AC…"), written by
    # the "twilio" run; other sources (send-logs, bulk-export) have runs only. seconds_since is NULL for a
    # time that is not finite (a warehouse an analyst wrote may hold 'infinity').
    return con.execute(
        """
        WITH last_run AS (
            SELECT source, max(finished_at) FILTER (WHERE status = 'ok') AS last_ok_run,
                   max(started_at) AS last_attempt,
                   arg_max(status, started_at) AS last_status,
                   arg_max(error, started_at) AS last_error
            FROM ingest_runs GROUP BY source
        ), state AS (
            SELECT *, CASE WHEN split_part(source, ':', 1) IN ('messages', 'calls') THEN 'twilio' END AS run_source
            FROM ingest_state
        ), joined AS (
            SELECT coalesce(s.source, r.source) AS source, s.cursor, s.updated_at AS cursor_updated_at,
                   r.last_ok_run, r.last_attempt, r.last_status, r.last_error,
                   coalesce(r.last_ok_run, s.updated_at) AS fresh_at
            FROM state s FULL OUTER JOIN last_run r ON r.source = s.source OR r.source = s.run_source
        )
        SELECT * EXCLUDE (fresh_at),
               CASE WHEN isfinite(fresh_at) THEN epoch(current_timestamp) - epoch(fresh_at) END AS seconds_since
        FROM joined ORDER BY source
        """
    ).df()


def freshness() -> pd.DataFrame:
    """Per source: its cursor, last successful run, its status and the seconds since (ingest_state + ingest_runs)."""
    return run(_freshness)


def _freshness_history(con: duckdb.DuckDBPyConnection, limit: int) -> pd.DataFrame:
    # The `freshness` view (ingest/freshness.sql, issue 16); a warehouse published before it existed has
    # none, and the Data page then says how to get it rather than failing.
    exists = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'freshness' "
                         "AND database_name = current_database()").fetchall()[0][0]
    if not exists:
        return pd.DataFrame(columns=["source", "run_id", "visible_at", "newest_record_at", "newest_age_s",
                                     "fresh_records", "lag_p50_s", "lag_p95_s"])
    return con.execute(
        """
        SELECT source, run_id, visible_at, newest_record_at, newest_age_s, fresh_records, lag_p50_s, lag_p95_s
        FROM (FROM freshness ORDER BY run_id DESC LIMIT $limit) ORDER BY run_id
        """,
        {"limit": limit},
    ).df()


def freshness_history(limit: int = 500) -> pd.DataFrame:
    """The last ``limit`` rows of the ``freshness`` view: per source run, lag p50/p95 and the newest record's age."""
    return run(_freshness_history, limit)


def main_account_sid() -> str | None:
    """The account SID of the Twilio credentials this server has (to name the main account), else None."""
    try:
        return find_credentials().account_sid
    except SwitchboardError:  # no credentials or a broken secrets file: the labels say "account AC…1234"
        return None


def _ingest_runs(con: duckdb.DuckDBPyConnection, limit: int) -> pd.DataFrame:
    return con.execute(
        """
        SELECT run_id, source, status, started_at, finished_at,
               date_diff('millisecond', started_at, finished_at) / 1000.0 AS seconds,
               rows_read, rows_loaded, rows_rejected, cursor_before, cursor_after, error
        FROM ingest_runs ORDER BY started_at DESC, run_id DESC LIMIT $limit
        """,
        {"limit": limit},
    ).df()


def ingest_runs(limit: int = 200) -> pd.DataFrame:
    return run(_ingest_runs, limit)


def _rejects(con: duckdb.DuckDBPyConnection, limit: int) -> pd.DataFrame:
    return con.execute(
        """
        SELECT reject_id, run_id, source, location, line, reason, raw, rejected_at
        FROM rejects ORDER BY rejected_at DESC, reject_id DESC LIMIT $limit
        """,
        {"limit": limit},
    ).df()


def rejects(limit: int = 500) -> pd.DataFrame:
    """The latest rejected records with the reason. ``raw`` may hold phone numbers: mask before showing."""
    return run(_rejects, limit)


def _rejects_by_reason(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        "SELECT source, reason, count(*) AS rejects, max(rejected_at) AS last_seen "
        "FROM rejects GROUP BY ALL ORDER BY rejects DESC"
    ).df()


def rejects_by_reason() -> pd.DataFrame:
    return run(_rejects_by_reason)


def _schema(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    from switchboard.analytics.schema import view_comments  # the COMMENTs travel with the snapshot

    return view_comments(con)


def schema() -> pd.DataFrame:
    """The analyst views' columns with their comments (the documented contract)."""
    return run(_schema)


def _view_descriptions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        "SELECT view_name, comment FROM duckdb_views() "
        "WHERE view_name IN ('message_facts', 'call_facts', 'attempt_facts') ORDER BY view_name"
    ).df()


def view_descriptions() -> pd.DataFrame:
    return run(_view_descriptions)
