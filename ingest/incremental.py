"""Facts and rollups kept current at the cost of what a run changed (docs/ARCHITECTURE.md, "Incremental
warehouse").

facts.sql holds one SELECT per table, reading its inputs through scope views. A **full build** defines
every scope view as its whole table and replaces each table. An **incremental build** works out which keys
the raw changes since the last build affect, defines each scope view as just those rows, deletes the keys
from each table and inserts the SELECT's rows for them. Both run the same SELECTs, so they agree; the
tests (tests/test_incremental_*.py) compare them after sequences of runs.

What a change affects (the cross-row rules):

* a message (call) sid: its row changed or was deleted, or a send-log row naming it as provider sid was
  written or deleted (the facts take the sid's first send-log row);
* a send-log event (an attempt): its row, its provider sid's message or call, a conversion or a deleted
  conversion of its member (conversions join by member and time, so a late one, even after midnight, moves
  the member's earlier attempts), and its fallbacks (the attempt's fallback_event_id, its chain row and
  its exposure cost read the child): the parents of every affected event are affected too;
* an experiment member: any affected attempt of theirs, before or after the change (a member can move
  between experiments when a send-log row is rewritten), every member of an experiment whose variant
  numbering changed, and a conversion of their user before one of their exposures, or a deleted one (the
  exposures count the pre-period conversions);
* a UTC day of a rollup: the old and the new day of every fact row deleted or inserted.

Everything happens in one transaction with the new watermark, so a killed build leaves the previous one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from dataclasses import dataclass, field

import duckdb

from switchboard.ingest import runs
from switchboard.ingest.changes import kill_point
from switchboard.ingest.warehouse import VIEWS_SQL, FactBuild, _statements, facts_definition


@dataclass
class FactsReport:
    mode: str = "unchanged"          # full | incremental | unchanged
    watermark: int = 0
    seconds: float = 0.0
    keys: dict[str, int] = field(default_factory=dict)  # affected keys per kind (incremental)


# --------------------------------------------------------------------------- affected keys

# temp tables of keys: (name, SQL), built in this order from the raw changes after watermark $w0
_KEY_TABLES: list[tuple[str, str]] = [
    ("_chg_sends", "SELECT event_id, provider_sid, fallback_of, user_id FROM send_log WHERE ingest_run_id > $w0"),
    ("_del", "SELECT tbl, key, aux FROM _deleted_keys WHERE run_id > $w0"),
    ("_k_msg", """
        SELECT sid AS k FROM twilio_messages WHERE ingest_run_id > $w0
        UNION SELECT key FROM _del WHERE tbl = 'twilio_messages'
        UNION SELECT provider_sid FROM _chg_sends WHERE provider_sid IS NOT NULL
        UNION SELECT sid FROM _message_facts WHERE event_id IN (SELECT key FROM _del WHERE tbl = 'send_log')"""),
    ("_k_call", """
        SELECT sid AS k FROM twilio_calls WHERE ingest_run_id > $w0
        UNION SELECT key FROM _del WHERE tbl = 'twilio_calls'
        UNION SELECT provider_sid FROM _chg_sends WHERE provider_sid IS NOT NULL
        UNION SELECT sid FROM _call_facts WHERE event_id IN (SELECT key FROM _del WHERE tbl = 'send_log')"""),
    # a conversion moves the member's attempts sent after their previous conversion and up to it (each
    # attempt takes the first conversion at or after it); a deleted one, all the member's attempts
    ("_chg_conv", "SELECT user_id, occurred_at FROM conversions WHERE ingest_run_id > $w0"),
    ("_k_ev0", """
        SELECT event_id AS k FROM _chg_sends
        UNION SELECT key FROM _del WHERE tbl = 'send_log'
        UNION SELECT event_id FROM send_log
              WHERE provider_sid IN (SELECT k FROM _k_msg UNION ALL SELECT k FROM _k_call)
        UNION SELECT s.event_id FROM send_log s JOIN _chg_conv c ON c.user_id = s.user_id
              WHERE s.sent_at <= c.occurred_at
                AND s.sent_at > coalesce((SELECT max(o.occurred_at) FROM conversions o
                                          WHERE o.user_id = c.user_id AND o.occurred_at < c.occurred_at
                                            AND o.ingest_run_id <= $w0), TIMESTAMPTZ '-infinity')
        UNION SELECT event_id FROM send_log WHERE user_id IN (SELECT aux FROM _del WHERE tbl = 'conversions')"""),
    ("_k_ev", """
        SELECT k FROM _k_ev0
        UNION SELECT fallback_of FROM send_log
              WHERE event_id IN (SELECT k FROM _k_ev0) AND fallback_of IS NOT NULL
        UNION SELECT fallback_of FROM _attempt_facts
              WHERE event_id IN (SELECT k FROM _k_ev0) AND fallback_of IS NOT NULL"""),
    # the members whose exposures' pre-period conversions (facts.sql) a changed or deleted conversion moves:
    # an exposure after the new one, any of a deleted one's user; the attempts step adds the members of the
    # attempts it rewrote (and of their parents)
    ("_k_mem", """
        SELECT DISTINCT e.experiment_id, e.user_id FROM _experiment_exposures e
        WHERE e.user_id IN (SELECT aux FROM _del WHERE tbl = 'conversions')
           OR EXISTS (SELECT 1 FROM _chg_conv c WHERE c.user_id = e.user_id AND c.occurred_at < e.sent_at)"""),
    ("_written", "SELECT CAST(NULL AS VARCHAR) AS tbl, CAST(NULL AS VARCHAR) AS k WHERE false"),
]

# the incremental definition of each scope view: which rows of its table (alias t) the affected keys need.
# A build materialises their rowids first (a narrow scan of the key columns), then its view reads just those
# rows, so the wide rows of a 10M-row table are not read to be thrown away. Views are made in the order
# facts.sql declares them, so a later scope may read an earlier one of the same build. (The rollups' day
# scopes are set by _incremental_rollup.)
_INCREMENTAL_SCOPES: dict[str, str] = {
    "_scope_messages": "t.sid IN (SELECT k FROM _k_msg)",
    "_scope_message_sends": "t.provider_sid IN (SELECT k FROM _k_msg)",
    "_scope_calls": "t.sid IN (SELECT k FROM _k_call)",
    "_scope_call_sends": "t.provider_sid IN (SELECT k FROM _k_call)",
    "_scope_sends": "t.event_id IN (SELECT k FROM _k_ev)",
    "_scope_fallback_sends": "t.fallback_of IN (SELECT k FROM _k_ev)",
    "_scope_conversions": "t.user_id IN (SELECT user_id FROM _scope_sends)",
    "_scope_attempt_messages": "t.sid IN (SELECT provider_sid FROM _scope_sends WHERE channel = 'sms')",
    "_scope_attempt_calls": "t.sid IN (SELECT provider_sid FROM _scope_sends WHERE channel = 'voice')",
    "_scope_chain_attempts": "t.event_id IN (SELECT k FROM _k_ev)",
    "_scope_chain_calls": "t.event_id IN (SELECT fallback_event_id FROM _scope_chain_attempts)",
    "_scope_exposure_attempts": ("EXISTS (SELECT 1 FROM _k_mem m "
                                 "WHERE m.experiment_id = t.experiment_id AND m.user_id = t.user_id)"),
    "_scope_exposure_fallbacks": "t.event_id IN (SELECT fallback_event_id FROM _scope_exposure_attempts)",
    "_scope_exposure_conversions": "t.user_id IN (SELECT user_id FROM _scope_exposure_attempts)",
}

# how each table's affected rows are found (to delete them) and which days table collects their days
_MEMBERS = ("EXISTS (SELECT 1 FROM _k_mem m WHERE m.experiment_id = {t}.experiment_id "
            "AND m.user_id = {t}.user_id)")
_AFFECTED: dict[str, tuple[str, str | None, str | None]] = {
    # table: (affected rows, their day column, the days table it feeds)
    "_message_facts": ("sid IN (SELECT k FROM _k_msg)", "sent_day", "_dd_msg"),
    "_call_facts": ("sid IN (SELECT k FROM _k_call)", "start_day", "_dd_call"),
    "_attempt_facts": ("event_id IN (SELECT k FROM _k_ev)", "sent_day", "_dd_att"),
    "_fallback_chain_facts": ("event_id IN (SELECT k FROM _k_ev)", None, None),
    "_experiment_exposures": (_MEMBERS.format(t="t"), None, None),
}

# the key column of each facts table, as published (ingest/publish.py)
FACT_KEYS: dict[str, str] = {
    "_message_facts": "sid", "_call_facts": "sid", "_attempt_facts": "event_id",
    "_fallback_chain_facts": "event_id", "_experiment_exposures": "member",
    "_daily_attempt_rollup": "sent_day", "_daily_message_rollup": "sent_day", "_daily_call_rollup": "start_day",
    "_daily_call_duration_rollup": "start_day", "_daily_latency_rollup": "sent_day",
    "_daily_prefix_rollup": "sent_day",
}


def _days(sql: str) -> str:
    """Expand ``{days:<column>:<table>}``: the column's day is one of the table's (NULL included)."""
    import re

    def one(m: re.Match[str]) -> str:
        col, table = m.group(1), m.group(2)
        return (f"({col} IN (SELECT d FROM {table}) "
                f"OR ({col} IS NULL AND EXISTS (SELECT 1 FROM {table} WHERE d IS NULL)))")

    return re.sub(r"\{days:(\w+):(\w+)\}", one, sql)


# --------------------------------------------------------------------------- state


def definition_fingerprint(con: duckdb.DuckDBPyConnection, conversion_window_minutes: int) -> str:
    """facts.sql, the dimensions the facts join and the conversion window: a change means a full build."""
    h = hashlib.sha256(facts_definition().text.encode())
    h.update(str(conversion_window_minutes).encode())
    for table in ("countries", "error_codes"):
        rows = con.execute(f"SELECT md5(coalesce(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR), '')) FROM {table} t")
        h.update(rows.fetchall()[0][0].encode())
    return h.hexdigest()[:32]


def current_watermark(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT coalesce(max(run_id), 0) FROM ingest_runs").fetchall()[0][0])


def _state(con: duckdb.DuckDBPyConnection) -> tuple[int, int, str] | None:
    rows = con.execute("SELECT watermark, rebuilt_at, definition FROM _facts_state").fetchall()
    return (int(rows[0][0]), int(rows[0][1]), rows[0][2]) if rows else None


def _save_state(con: duckdb.DuckDBPyConnection, watermark: int, rebuilt_at: int, definition: str) -> None:
    con.execute("DELETE FROM _facts_state")
    con.execute("INSERT INTO _facts_state VALUES ($w, $r, $d, current_timestamp)",
                {"w": watermark, "r": rebuilt_at, "d": definition})


def _tables_exist(con: duckdb.DuckDBPyConnection) -> bool:
    names = {b.table for b in facts_definition().builds}
    have = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main'"
    ).fetchall()}
    return names <= have


# --------------------------------------------------------------------------- builds


def refresh(con: duckdb.DuckDBPyConnection, *, conversion_window_minutes: int = 30,
            rebuild: bool = False) -> FactsReport:
    """Bring the facts and rollups up to date with the raw tables: incrementally when the last build's
    definition still holds, else (or with ``rebuild``) by a full build. One transaction."""
    t0 = time.monotonic()
    definition = definition_fingerprint(con, conversion_window_minutes)
    state = _state(con)
    w1 = current_watermark(con)
    params = {"conversion_window_minutes": conversion_window_minutes}
    with runs.transaction(con):
        if rebuild or state is None or state[2] != definition or not _tables_exist(con):
            _full_build(con, params)
            con.execute("DELETE FROM _fact_changes")
            _save_state(con, w1, w1, definition)
            report = FactsReport("full", w1)
        else:
            w0, rebuilt_at, _ = state
            report = FactsReport("unchanged", w1)
            if _changed_since(con, w0):
                report.mode = "incremental"
                report.keys = _incremental_build(con, w0, w1, params)
            _save_state(con, max(w1, w0), rebuilt_at, definition)
        _run_views(con, changed=report.mode != "unchanged")
        kill_point("facts:before-commit")
    report.seconds = time.monotonic() - t0
    return report


def _changed_since(con: duckdb.DuckDBPyConnection, w0: int) -> bool:
    probes = [f"SELECT 1 FROM {t} WHERE ingest_run_id > $w0 LIMIT 1"
              for t in ("twilio_messages", "twilio_calls", "send_log", "conversions")]
    probes.append("SELECT 1 FROM _deleted_keys WHERE run_id > $w0 LIMIT 1")
    return any(con.execute(p, {"w0": w0}).fetchall() for p in probes)


def _full_build(con: duckdb.DuckDBPyConnection, params: dict[str, int]) -> None:
    d = facts_definition()
    for b in d.builds:
        for view in b.scopes:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {d.scopes[view]}")
        if "append" in b.options:
            con.execute(f"INSERT INTO {b.table} BY NAME {b.select}", _params(b, params))
        else:
            con.execute(f"CREATE OR REPLACE TABLE {b.table} AS {b.select}", _params(b, params))
    _finish(con, d.finish)
    _drop_scopes(con, d.scopes)


def _incremental_build(con: duckdb.DuckDBPyConnection, w0: int, w1: int, params: dict[str, int]) -> dict[str, int]:
    d = facts_definition()
    for name, sql in _KEY_TABLES:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", {"w0": w0} if "$w0" in sql else None)
    for dd in ("_dd_msg", "_dd_call", "_dd_att"):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {dd} (d DATE)")
    for b in d.builds:
        _incremental_table(con, b, params)
    con.execute("INSERT INTO _fact_changes SELECT $w1, tbl, k FROM _written", {"w1": w1})
    counts = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])
              for t in ("_k_msg", "_k_call", "_k_ev", "_k_mem", "_dd_msg", "_dd_call", "_dd_att")}
    counts["written"] = int(con.execute("SELECT count(*) FROM _written").fetchall()[0][0])
    _finish(con, d.finish)
    _drop_scopes(con, d.scopes)
    for view in d.scopes:
        con.execute(f"DROP TABLE IF EXISTS _r{view}")
    for name, _ in _KEY_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {name}")
    for dd in ("_dd_msg", "_dd_call", "_dd_att"):
        con.execute(f"DROP TABLE IF EXISTS {dd}")
    for t in ("_message_facts", "_call_facts", "_attempt_facts"):
        for side in ("o", "n"):
            con.execute(f"DROP TABLE IF EXISTS _w{side}{t}")
    return {k.lstrip("_"): v for k, v in counts.items()}


def _incremental_table(con: duckdb.DuckDBPyConnection, b: FactBuild, params: dict[str, int]) -> None:
    """One table: its SELECT for the affected keys, compared with the rows it has for them; only the keys
    whose rows differ are rewritten (a late conversion re-checks a member's month of attempts but rewrites
    the one it converts), and only their days and members go on to the rollups and exposures."""
    if b.table.startswith("_daily_"):
        _incremental_rollup(con, b, params)
        return
    scopes = facts_definition().scopes
    for view in b.scopes:
        _narrow(con, f"_r{view}", scopes[view], _INCREMENTAL_SCOPES[view])
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {scopes[view]} "
                    f"WHERE rowid IN (SELECT r FROM _r{view})")
    if "append" in b.options:
        con.execute(f"INSERT INTO {b.table} BY NAME {b.select}", _params(b, params))
        return
    if "full" in b.options:
        _replace_small(con, b, params)
        return
    where, day, dd = _AFFECTED[b.table]
    key = FACT_KEYS[b.table]
    con.execute(f"CREATE OR REPLACE TEMP TABLE _new AS {b.select}", _params(b, params))
    _narrow(con, "_oldr", b.table, _days(where), key)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _old AS SELECT * FROM {b.table} WHERE rowid IN (SELECT r FROM _oldr)")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _w AS SELECT DISTINCT {key} AS d FROM (
                        (SELECT * FROM _new EXCEPT ALL SELECT * FROM _old)
                        UNION ALL (SELECT * FROM _old EXCEPT ALL SELECT * FROM _new))""")
    hit = _days(f"{{days:{key}:_w}}")
    if dd:
        for side in ("_old", "_new"):
            con.execute(f"INSERT INTO {dd} SELECT DISTINCT {day} FROM {side} WHERE {hit}")
    if b.table == "_attempt_facts":
        _members_of_written(con, hit)
    if dd:  # the rewritten rows as they were and as they are: the rollups compare them (_incremental_rollup)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _wo{b.table} AS SELECT * FROM _old WHERE {hit}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _wn{b.table} AS SELECT * FROM _new WHERE {hit}")
    con.execute(f"DELETE FROM {b.table} WHERE rowid IN (SELECT r FROM _oldr WHERE {hit})")
    kill_point(f"facts:deleted:{b.table}")
    con.execute(f"INSERT INTO {b.table} BY NAME SELECT * FROM _new WHERE {hit}")
    con.execute(f"INSERT INTO _written SELECT '{b.table}', CAST(d AS VARCHAR) FROM _w")
    for t in ("_new", "_old", "_oldr", "_w"):
        con.execute(f"DROP TABLE {t}")


def _incremental_rollup(con: duckdb.DuckDBPyConnection, b: FactBuild, params: dict[str, int]) -> None:
    """A daily rollup: its SELECT over the rewritten fact rows as they were and as they are; only the days
    where those two partial rollups differ can have changed (a late conversion rewrites a month-old
    attempt's time to convert, which no rollup counts), and those days are recounted whole."""
    (scope,) = b.scopes
    src, day = facts_definition().scopes[scope], FACT_KEYS[b.table]
    for side in ("o", "n"):
        con.execute(f"CREATE OR REPLACE TEMP VIEW {scope} AS SELECT * FROM _w{side}{src}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _p{side} AS {b.select}", _params(b, params))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _w AS SELECT DISTINCT {day} AS d FROM (
                        (SELECT * FROM _po EXCEPT ALL SELECT * FROM _pn)
                        UNION ALL (SELECT * FROM _pn EXCEPT ALL SELECT * FROM _po))""")
    days = _days(f"{{days:{day}:_w}}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {scope} AS SELECT * FROM {src} WHERE {days}")
    con.execute(f"DELETE FROM {b.table} WHERE {days}")
    kill_point(f"facts:deleted:{b.table}")
    con.execute(f"INSERT INTO {b.table} BY NAME {b.select}", _params(b, params))
    con.execute(f"INSERT INTO _written SELECT '{b.table}', CAST(d AS VARCHAR) FROM _w")
    for t in ("_po", "_pn", "_w"):
        con.execute(f"DROP TABLE {t}")


def _narrow(con: duckdb.DuckDBPyConnection, name: str, table: str, where: str, key: str | None = None) -> None:
    """Temp table ``name`` of the rowids (column r, and the key column when given) of ``table``'s rows
    matching ``where`` (alias t): a scan of the columns ``where`` reads, not of the whole rows."""
    extra = f", t.{key}" if key else ""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT t.rowid AS r{extra} FROM {table} t WHERE {where}")


def _members_of_written(con: duckdb.DuckDBPyConnection, hit: str) -> None:
    """The experiment members whose exposures the rewritten attempts change: their own (before and after),
    and those of the attempts they are fallbacks of (an exposure's cost adds its fallback's)."""
    con.execute(f"""INSERT INTO _k_mem
        SELECT DISTINCT experiment_id, user_id FROM (
            SELECT experiment_id, user_id, variant, is_fallback FROM _old WHERE {hit}
            UNION ALL SELECT experiment_id, user_id, variant, is_fallback FROM _new WHERE {hit}
            UNION ALL SELECT experiment_id, user_id, variant, is_fallback FROM _attempt_facts
                      WHERE event_id IN (SELECT fallback_of FROM _old WHERE {hit} AND fallback_of IS NOT NULL
                                         UNION SELECT fallback_of FROM _new WHERE {hit} AND fallback_of IS NOT NULL))
        WHERE experiment_id IS NOT NULL AND variant IS NOT NULL AND NOT is_fallback
        EXCEPT SELECT experiment_id, user_id FROM _k_mem""")


def _replace_small(con: duckdb.DuckDBPyConnection, b: FactBuild, params: dict[str, int]) -> None:
    """A small derived table (the variant numbering) rebuilt whole; when an experiment's numbering
    changes, all its members' exposures are affected."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _old_small AS SELECT * FROM {b.table}")
    con.execute(f"CREATE OR REPLACE TABLE {b.table} AS {b.select}", _params(b, params))
    if b.table == "_experiment_variants":
        con.execute(
            """INSERT INTO _k_mem
               SELECT DISTINCT experiment_id, user_id FROM _experiment_exposures
               WHERE experiment_id IN (SELECT experiment_id FROM (
                   (SELECT * FROM _experiment_variants EXCEPT SELECT * FROM _old_small)
                   UNION ALL (SELECT * FROM _old_small EXCEPT SELECT * FROM _experiment_variants)))
               EXCEPT SELECT experiment_id, user_id FROM _k_mem""")
    con.execute("DROP TABLE _old_small")


def _params(b: FactBuild, params: dict[str, int]) -> dict[str, int] | None:
    return {k: v for k, v in params.items() if f"${k}" in b.select} or None


def _finish(con: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
    for stmt in statements:
        con.execute(stmt)


def _drop_scopes(con: duckdb.DuckDBPyConnection, scopes: dict[str, str]) -> None:
    for view in scopes:
        con.execute(f"DROP VIEW IF EXISTS {view}")


def _run_views(con: duckdb.DuckDBPyConnection, *, changed: bool) -> None:
    """The analyst views and the ``freshness`` view (cheap: catalog entries), then the replies (issue 18: a full rebuild after the
    attempts, so only when the facts changed or the replies were never built)."""
    for sql_file in (VIEWS_SQL, VIEWS_SQL.with_name("freshness.sql")):  # freshness: issue 16, per run
        for stmt in _statements(sql_file):
            con.execute(stmt)
    if importlib.util.find_spec("switchboard.ingest.responses") is None:
        return
    from switchboard.ingest import responses

    refresh_responses = getattr(responses, "refresh_responses", None)
    built = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                        "AND table_name = '_response_facts'").fetchall()[0][0]
    if refresh_responses is not None and (changed or not built):
        refresh_responses(con)
