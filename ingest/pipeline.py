"""One ingest run, in-process: sources -> private ingest DB -> facts -> published snapshot.

``run_ingest(settings, ...)`` is what ``switchboard ingest``, the demo and the tests call.
Each source is audited in ``ingest_runs``; one failing source does not stop the others,
and the report says which failed. The facts are rebuilt and the snapshot published even
then: every page and file is committed whole, so what is there is consistent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from switchboard.core.errors import ConfigError
from switchboard.core.twilio import INGEST_RETRIES, TwilioAuthError, find_credentials, make_client
from switchboard.ingest import runs, warehouse
from switchboard.ingest.runs import IngestReport, SourceResult
from switchboard.core.settings import Settings

SOURCES = ("twilio", "send-logs", "bulk-export")
MEMORY_LIMIT = os.environ.get("SWITCHBOARD_INGEST_MEMORY", "1GB")  # keeps a 10M-row ingest under 2 GB


class IngestError(ConfigError):
    """An error the user can fix (missing credentials, ingest already running); the message says how."""


# --------------------------------------------------------------------------- credentials and client


def default_client_factory(environ: dict[str, str] | None = None) -> Callable[[], Any]:
    """A factory of ``twilio.rest.Client`` with the ingest's retries (5xx too: reads are safe to repeat);
    SWITCHBOARD_TWILIO_BASE_URL points it at a sandbox. Missing credentials fail here, before anything runs."""
    creds = find_credentials(environ)
    return lambda: make_client(creds, policy=INGEST_RETRIES)


# --------------------------------------------------------------------------- the run


def _as_datetime(value: date | datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _normalise_sources(sources: Iterable[str] | str | None) -> list[str]:
    if sources is None or sources == "all":
        return list(SOURCES)
    items = [sources] if isinstance(sources, str) else list(sources)
    out: list[str] = []
    for s in items:
        for name in SOURCES if s == "all" else [s]:
            if name not in SOURCES:
                raise IngestError(f"unknown source {name!r}: choose from {', '.join(SOURCES)} or all")
            if name not in out:
                out.append(name)
    return out


def open_ingest_db(path: Path) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = warehouse.connect(path)
    except duckdb.IOException as exc:
        raise IngestError(f"{path} is in use (is another ingest running?): {exc}") from None
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET preserve_insertion_order = true")
    warehouse.ensure_schema(con)
    return con


def _progress(desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(desc=f"{desc:<12}", unit=" rec", unit_scale=True, disable=not enabled, leave=True, dynamic_ncols=True)


def run_ingest(
    settings: Settings | None = None,
    *,
    sources: Sequence[str] | str | None = None,
    since: date | datetime | str | None = None,
    until: date | datetime | str | None = None,
    full_refresh: bool = False,
    client_factory: Callable[[], Any] | None = None,
    progress: bool = True,
    send_logs: Sequence[str] | None = None,
    bulk_export_dir: Path | str | None = None,
    lag_hours: float | None = None,
    publish: bool = True,
) -> IngestReport:
    """Run the chosen sources (default all), rebuild the facts, publish the snapshot.

    ``send_logs``: globs (default ``data/send_logs/sends-*`` and ``conversions-*``);
    ``bulk_export_dir``: a folder of BulkExport day files (default ``data/bulk_export`` when it exists).
    Raises :class:`IngestError` for problems the user must fix before anything runs
    (missing credentials when Twilio is asked for, the ingest DB locked by another run).
    """
    settings = settings or Settings.from_env()
    chosen = _normalise_sources(sources)
    lag = timedelta(hours=settings.lag_hours if lag_hours is None else lag_hours)
    since_dt, until_dt = _as_datetime(since), _as_datetime(until)
    if "twilio" in chosen and client_factory is None:
        client_factory = default_client_factory()
    report = IngestReport()
    t_run = time.monotonic()
    con = open_ingest_db(settings.ingest_db_path)
    try:
        for name in chosen:
            result = SourceResult(name)
            run_id = runs.start_run(con, name)
            bar = _progress(name, progress)
            t0 = time.monotonic()
            try:
                if name == "twilio":
                    _run_twilio(con, client_factory, run_id, result, lag, since_dt, until_dt, full_refresh, bar)
                elif name == "send-logs":
                    from switchboard.ingest.send_logs import default_globs, ingest_send_logs

                    patterns = list(send_logs) if send_logs else default_globs(settings.send_logs_dir)
                    ingest_send_logs(con, patterns, run_id, result, full_refresh=full_refresh,
                                     on_file=lambda o: bar.update(o.read))  # noqa: B023 - called before the loop moves on
                else:
                    from switchboard.ingest.bulk_export import ingest_bulk_export

                    folder = Path(bulk_export_dir) if bulk_export_dir else settings.data_dir / "bulk_export"
                    if folder.is_dir():
                        ingest_bulk_export(con, folder, run_id, result, full_refresh=full_refresh, on_file=bar.update)
                    else:
                        result.status = "skipped"
                        result.detail = f"no folder {folder}"
            except TwilioAuthError as exc:
                result.status, result.error, result.auth_failed = "failed", str(exc), True
            except Exception as exc:  # noqa: BLE001 - recorded in ingest_runs and the report, run continues
                result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                bar.close()
            result.seconds = time.monotonic() - t0
            runs.finish_run(con, run_id, result)
            report.results.append(result)
        warehouse.refresh_facts(con, conversion_window_minutes=settings.conversion_window_minutes)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    if publish:
        report.published = str(warehouse.publish_snapshot(settings.ingest_db_path, settings.warehouse_path))
    report.seconds = time.monotonic() - t_run
    return report


def _run_twilio(
    con: duckdb.DuckDBPyConnection,
    client_factory: Callable[[], Any] | None,
    run_id: int,
    result: SourceResult,
    lag: timedelta,
    since: datetime | None,
    until: datetime | None,
    full_refresh: bool,
    bar: Any,
) -> None:
    from switchboard.ingest.twilio_api import CALLS, MESSAGES, ingest_streams, list_accounts

    assert client_factory is not None
    client = client_factory()
    accounts = list_accounts(client)
    # one client per stream: each fetches in its own thread, with its own HTTP session
    streams = [(account_sid, res, client_factory()) for account_sid in accounts for res in (MESSAGES, CALLS)]
    # batches are small: a second DuckDB thread costs more in handoffs than it gains (and the fetch
    # threads want the CPU)
    con.execute("SET threads = 1")
    try:
        ingest_streams(con, client, streams, run_id, result, lag=lag, since=since, until=until,
                       full_refresh=full_refresh, on_page=bar.update)
    finally:
        con.execute("RESET threads")
    retries = sum(getattr(getattr(c, "http_client", None), "retries", 0) for c in [client] + [s[2] for s in streams])
    result.detail = f"{len(accounts)} account(s), {retries} retried request(s)"
