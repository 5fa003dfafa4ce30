"""The Data page's read-only SQL box: pure functions, testable without Streamlit.

Defence in depth, because analysts paste anything:

1. **Statement check.** DuckDB's own parser (``duckdb.extract_statements``) must see
   exactly one statement of type SELECT (which covers WITH, FROM-first, DESCRIBE,
   SHOW and SUMMARIZE) or EXPLAIN of one (``EXPLAIN ANALYZE`` runs its statement, so
   ``EXPLAIN ANALYZE INSERT …`` is a write). COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA,
   CALL, CREATE, INSERT, EXPORT, … are refused before anything runs.
2. **Its own sandboxed DuckDB instance** (``_sql_worker.open_sandbox``): a private
   in-memory database that ATTACHes the snapshot ``READ_ONLY``, then sets
   ``enable_external_access = false`` (no reading or writing files, no ATTACH of
   other paths, no extension install) and ``lock_configuration = true`` so a query
   cannot turn it back on.
3. **Its own process, with limits DuckDB cannot outrun** (``_sql_worker``): the
   address space is capped (``RLIMIT_AS``) at the memory limit plus headroom, and the
   process is killed when the time is up. DuckDB's own ``memory_limit`` and
   ``interrupt()`` did not stop a single huge value (``repeat('x', 1500000000)``:
   3 GB and up to 51 s against 1 GB and 2 s).
4. **At most ``MAX_WORKERS`` queries at once** per server, so the limits bound the total.
5. **Limits on what comes back.** At most ``max_rows`` rows (the result says when it
   was cut) and ``max_result_bytes`` of data; types pandas or Arrow cannot take come
   back as DuckDB's text for them.

Every failure is a :class:`SqlBoxError` whose message is the one line to show.
A query costs one Python start (about 0.3 s of CPU here) on top of its own time;
the time limit starts once the worker is ready.
"""

from __future__ import annotations

import io
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.ipc

from switchboard.core.errors import ConfigError
from switchboard.dashboard import _sql_worker as worker
from switchboard.dashboard._sql_worker import open_sandbox

__all__ = ["SqlBoxError", "SqlResult", "check_statement", "open_sandbox", "run_query",
           "to_csv_bytes", "to_parquet_bytes"]

_log = logging.getLogger(__name__)
ALLOWED_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
DEFAULT_MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MEMORY_MB = 1024
DEFAULT_MAX_RESULT_BYTES = 64 * 1024 * 1024  # Streamlit's own message limit is 200 MB
STARTUP_TIMEOUT_S = 60.0  # Python + DuckDB start; only a machine in trouble comes near it
# Queries running at once in this server (every session together): the memory limit is per worker,
# so this bounds the box's total to MAX_WORKERS x (memory limit + headroom). A query waits up to its
# timeout for a free worker.
MAX_WORKERS = 2
_workers = threading.BoundedSemaphore(MAX_WORKERS)
ALIAS = worker.ALIAS
READ_KINDS = "SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN"


class SqlBoxError(ConfigError, ValueError):
    """A query the box refuses or DuckDB rejects; ``str()`` is the message to show."""


@dataclass(frozen=True)
class SqlResult:
    frame: pd.DataFrame
    truncated: bool
    max_rows: int


# --- the statement check -------------------------------------------------------------------------


def check_statement(sql: str) -> str:
    """Return the single allowed statement's text, or raise :class:`SqlBoxError` saying why not."""
    if not sql or not sql.strip():
        raise SqlBoxError("Type a query, e.g. SELECT * FROM message_facts LIMIT 10.")
    statement = _one_statement(sql)
    if statement.type == duckdb.StatementType.EXPLAIN:
        inner = _one_statement(_after_explain(sql), explained=True)
        if inner.type != duckdb.StatementType.SELECT:
            raise SqlBoxError(_refusal(f"EXPLAIN of {inner.type.name}", "EXPLAIN ANALYZE runs the statement it explains"))
    elif statement.type not in ALLOWED_TYPES:
        raise SqlBoxError(_refusal(statement.type.name))
    return sql.strip().rstrip(";").strip()


def _refusal(kind: str, why: str = "") -> str:
    return (f"Only read queries are allowed ({READ_KINDS} of a read); this statement is {kind}"
            f"{f' ({why})' if why else ''}. The warehouse is read-only: ingest is its only writer.")


def _one_statement(sql: str, *, explained: bool = False) -> Any:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise SqlBoxError(str(err)) from None
    if len(statements) != 1:
        what = "EXPLAIN one statement" if explained else "One statement at a time, please"
        raise SqlBoxError(f"{what}: found {len(statements)}.")
    return statements[0]


def _after_explain(sql: str) -> str:
    """The statement an EXPLAIN explains: what follows ``EXPLAIN [ANALYZE] [(options)]``.

    Read off DuckDB's tokenizer (comments skipped, byte offsets), so whitespace, comments
    and case around the keywords cannot hide the statement.
    """
    raw = sql.encode("utf-8")
    tokens = duckdb.tokenize(sql)
    ends = [pos for pos, _ in tokens[1:]] + [len(raw)]
    kept = [(pos, end) for (pos, kind), end in zip(tokens, ends) if kind != duckdb.token_type.comment]
    offsets = [pos for pos, _ in kept]
    words = [raw[a:b].decode("utf-8", "replace").strip().upper() for a, b in kept]
    i = 1  # words[0] is EXPLAIN: the parser said so
    if i < len(words) and words[i] in ("ANALYZE", "ANALYSE"):
        i += 1
    if i < len(words) and words[i] == "(":
        depth = 0
        while i < len(words):
            depth += words[i] == "("
            depth -= words[i] == ")"
            i += 1
            if depth == 0:
                break
    return raw[offsets[i]:].decode("utf-8") if i < len(offsets) else ""


# --- running a query in the worker ---------------------------------------------------------------


def run_query(
    warehouse: Path | str,
    sql: str,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> SqlResult:
    """Check ``sql``, then run it in a fresh sandboxed worker process on ``warehouse``.

    A fresh process per query means no state leaks between queries or sessions, a new
    snapshot is always the one read, and the limits are the operating system's.
    """
    statement = check_statement(sql)
    request = {"warehouse": str(warehouse), "sql": statement, "max_rows": max_rows,
               "memory_mb": memory_mb, "max_result_bytes": max_result_bytes}
    if not _workers.acquire(timeout=timeout_s):
        raise SqlBoxError(f"The SQL box is already running {MAX_WORKERS} queries (each may take "
                          f"{memory_mb:,} MB); try again when one has finished.")
    try:
        answer = _run_worker(request, timeout_s, memory_mb)
    finally:
        _workers.release()
    meta, _, payload = answer.partition(b"\n")
    try:
        frame = pa.ipc.open_stream(payload).read_all().to_pandas()
    except (pa.ArrowException, ValueError, OverflowError) as err:  # the worker made the types safe; never expected
        raise SqlBoxError(f"The result cannot be shown ({type(err).__name__}: {err}).") from None
    return SqlResult(frame, bool(json.loads(meta)["truncated"]), max_rows)


def _run_worker(request: dict[str, Any], timeout_s: float, memory_mb: int) -> bytes:
    """The worker's answer after ``OK!``, or :class:`SqlBoxError` with its message, the timeout or the crash."""
    # Few malloc arenas: each reserves 64 MB of address space, which the RLIMIT_AS cap counts.
    env = dict(os.environ, MALLOC_ARENA_MAX="2")
    proc = subprocess.Popen([sys.executable, "-m", worker.__name__], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first, out, err = b"", b"", b""
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
        proc.stdin.flush()
        first = _read_marker(proc)
        out, err = proc.communicate(timeout=timeout_s if first == worker.READY else STARTUP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        if first != worker.READY:
            raise SqlBoxError(f"The SQL box's worker did not start within {STARTUP_TIMEOUT_S:g} s: "
                              "the server is overloaded. Try again in a moment.") from None
        raise SqlBoxError(f"The query ran longer than the SQL box's {timeout_s:g} s and was stopped. "
                          "Filter or aggregate more, or add a LIMIT.") from None
    except BrokenPipeError:  # the worker died before reading the request; reported below
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    if first == worker.READY:
        first, out = out[:len(worker.OK)], out[len(worker.OK):]
    if first == worker.ERR:
        raise SqlBoxError(out.decode("utf-8", "replace").strip() or "The query failed.")
    if first == worker.OK:
        return out
    raise SqlBoxError(_crash_message(proc.returncode, err, memory_mb))


def _read_marker(proc: subprocess.Popen[bytes]) -> bytes:
    """The worker's first 4 bytes (``RDY`` or ``ERR``), waiting at most ``STARTUP_TIMEOUT_S``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    got = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while len(got) < len(worker.READY):
            if not sel.select(STARTUP_TIMEOUT_S):
                raise subprocess.TimeoutExpired(proc.args, STARTUP_TIMEOUT_S)
            chunk = os.read(fd, len(worker.READY) - len(got))
            if not chunk:
                break
            got += chunk
    return got


def _crash_message(returncode: int | None, stderr: bytes, memory_mb: int) -> str:
    """A worker that died without answering: almost always an allocation at the memory cap."""
    _log.warning("SQL box worker exited with %s: %s", returncode, stderr.decode("utf-8", "replace")[-2000:])
    how = f"exit {returncode}"
    if returncode is not None and returncode < 0:
        how = f"signal {signal.Signals(-returncode).name}" if -returncode in signal.valid_signals() else f"signal {-returncode}"
    return (f"The query stopped its worker ({how}), most likely at the SQL box's {memory_mb:,} MB memory "
            "limit. Aggregate, filter or add a LIMIT.")


# --- downloads -----------------------------------------------------------------------------------


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()
