"""One ingest run, in-process: sources -> private ingest DB -> facts -> published snapshot.

``run_ingest(settings, ...)`` is what ``switchboard ingest``, the demo and the tests call.
Each source is audited in ``ingest_runs``; one failing source does not stop the others,
and the report says which failed. The facts are rebuilt and the snapshot published even
then: every page and file is committed whole, so what is there is consistent.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from switchboard.core.errors import ConfigError
from switchboard.core.settings import Settings
from switchboard.core.twilio import INGEST_RETRIES, TwilioAuthError, find_credentials, make_client
from switchboard.ingest import incremental, runs, warehouse
from switchboard.ingest import publish as publish_mod
from switchboard.ingest.runs import IngestReport, RunContext, Source, SourceResult
from switchboard.ingest.twilio_api import TwilioClient

SOURCES = ("twilio", "send-logs", "bulk-export", "receiver")  # "receiver" last: it applies events to rows the
# poller loaded in the same run; "all" includes it only when the spool folder exists (spool_folder)
MEMORY_LIMIT = os.environ.get("SWITCHBOARD_INGEST_MEMORY", "1GB")  # keeps a 10M-row ingest under 2 GB


class IngestError(ConfigError):
    """An error the user can fix (missing credentials, ingest already running); the message says how."""


# --------------------------------------------------------------------------- credentials and client


def default_client_factory(environ: dict[str, str] | None = None) -> Callable[[], TwilioClient]:
    """A factory of ``twilio.rest.Client`` with the ingest's retries (5xx too: reads are safe to repeat);
    SWITCHBOARD_TWILIO_BASE_URL points it at a sandbox. Missing credentials fail here, before anything runs."""
    creds = find_credentials(environ)
    return lambda: make_client(creds, policy=INGEST_RETRIES)


# --------------------------------------------------------------------------- the run


def _as_datetime(value: date | datetime | str | None, option: str) -> datetime | None:
    """A --since/--until value as an aware UTC datetime; a value that is not a date is the user's to fix."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise IngestError(f"{option} {value!r} is not a date: give YYYY-MM-DD (or an ISO-8601 time such as "
                              "2026-11-01T08:00:00Z)") from None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _lag(hours: float) -> timedelta:
    if not isinstance(hours, (int, float)) or not math.isfinite(hours) or hours < 0:
        raise IngestError(f"lag {hours!r} hours is not a finite number >= 0: give --lag-hours H (or "
                          "SWITCHBOARD_LAG_HOURS), e.g. 72")
    try:
        return timedelta(hours=hours)
    except OverflowError:
        raise IngestError(f"lag {hours!r} hours is too large: give --lag-hours H, e.g. 72") from None


def _window(since: date | datetime | str | None, until: date | datetime | str | None
            ) -> tuple[datetime | None, datetime | None]:
    since_dt, until_dt = _as_datetime(since, "--since"), _as_datetime(until, "--until")
    if since_dt and until_dt and since_dt >= until_dt:
        raise IngestError(f"--since {since_dt:%Y-%m-%d %H:%M} is not before --until {until_dt:%Y-%m-%d %H:%M}: "
                          "the window would be empty; swap or widen them")
    return since_dt, until_dt


def spool_folder(settings: Settings, spool_dir: Path | str | None = None) -> Path:
    """The receiver's spool: ``spool_dir`` if given, else ``<data_dir>/spool`` (``switchboard listen``'s default)."""
    return Path(spool_dir) if spool_dir else settings.data_dir / "spool"


def _normalise_sources(sources: Iterable[str] | str | None, has_spool: bool = True) -> list[str]:
    everything = [name for name in SOURCES if has_spool or name != "receiver"]
    if sources is None or sources == "all":
        return everything
    items = [sources] if isinstance(sources, str) else list(sources)
    out: list[str] = []
    for s in items:
        for name in everything if s == "all" else [s]:
            if name not in SOURCES:
                raise IngestError(f"unknown source {name!r}: choose from {', '.join(SOURCES)} or all")
            if name not in out:
                out.append(name)
    return out


def open_ingest_db(path: Path) -> duckdb.DuckDBPyConnection:
    """The private ingest database, schema ensured; runs a killed ingest left ``running`` become ``interrupted``."""
    if path.parent.exists() and not path.parent.is_dir():
        raise IngestError(f"the data folder {path.parent} is a file: give --data-dir (or SWITCHBOARD_DATA_DIR) a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IngestError(f"cannot create the data folder {path.parent} ({exc.strerror}): give --data-dir a "
                          "folder you can write") from None
    try:
        con = warehouse.connect(path)
    except duckdb.IOException as exc:
        raise IngestError(f"{path} is in use (is another ingest running?): {exc}") from None
    con.execute("SET memory_limit = $limit", {"limit": MEMORY_LIMIT})
    con.execute("SET preserve_insertion_order = true")
    warehouse.ensure_schema(con)
    runs.mark_interrupted(con)  # we hold the lock: no run marked running is alive
    return con


def _progress(desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(desc=f"{desc:<12}", unit=" rec", unit_scale=True, disable=not enabled, leave=True, dynamic_ncols=True)


def build_sources(
    chosen: Sequence[str], settings: Settings, *, client_factory: Callable[[], TwilioClient] | None,
    send_logs: Sequence[str] | None, bulk_export_dir: Path | str | None, spool_dir: Path | str | None = None,
) -> list[Source]:
    """The chosen sources, configured, in the order given."""
    from switchboard.ingest.bulk_export import BulkExportSource
    from switchboard.ingest.send_logs import SendLogSource, default_globs
    from switchboard.ingest.spool_source import SpoolSource
    from switchboard.ingest.twilio_api import TwilioSource

    builders: dict[str, Callable[[], Source]] = {
        "twilio": lambda: TwilioSource(client_factory or default_client_factory()),
        "send-logs": lambda: (SendLogSource(list(send_logs)) if send_logs
                              else SendLogSource(default_globs(settings.send_logs_dir), warn_unmatched=False)),
        "bulk-export": lambda: BulkExportSource(
            Path(bulk_export_dir) if bulk_export_dir else settings.data_dir / "bulk_export"),
        "receiver": lambda: SpoolSource(spool_folder(settings, spool_dir)),
    }
    return [builders[name]() for name in chosen]


def run_ingest(
    settings: Settings | None = None,
    *,
    sources: Sequence[str] | str | None = None,
    since: date | datetime | str | None = None,
    until: date | datetime | str | None = None,
    full_refresh: bool = False,
    client_factory: Callable[[], TwilioClient] | None = None,
    progress: bool = True,
    send_logs: Sequence[str] | None = None,
    bulk_export_dir: Path | str | None = None,
    lag_hours: float | None = None,
    publish: bool = True,
    spool_dir: Path | str | None = None,
    rebuild_facts: bool = False,
    after_facts: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> IngestReport:
    """Run the chosen sources (default all), rebuild the facts, publish the snapshot.

    ``send_logs``: globs (default ``data/send_logs/sends-*`` and ``conversions-*``);
    ``bulk_export_dir``: a folder of BulkExport day files (default ``data/bulk_export`` when it exists);
    ``spool_dir``: the receiver's spool (default ``data/spool``; "all" reads it only when it exists).
    The facts are brought up to date incrementally (``rebuild_facts``: by a full build, the reference),
    then ``after_facts(con)`` runs on the writer connection (alerts; its failure is recorded in the
    report, not raised), then the snapshot is published by patching a snapshot file no reader holds.
    Raises :class:`IngestError` for problems the user must fix before anything runs (a bad date or lag,
    an empty window, missing credentials when Twilio is asked for, the ingest DB locked by another run).
    """
    settings = settings or Settings.from_env()
    lag = _lag(settings.lag_hours if lag_hours is None else lag_hours)
    since_dt, until_dt = _window(since, until)
    names = _normalise_sources(sources, spool_folder(settings, spool_dir).is_dir())
    chosen = build_sources(names, settings, client_factory=client_factory, send_logs=send_logs,
                           bulk_export_dir=bulk_export_dir, spool_dir=spool_dir)
    report = IngestReport()
    t_run = time.monotonic()
    con = open_ingest_db(settings.ingest_db_path)
    try:
        for source in chosen:
            ctx = RunContext(runs.start_run(con, source.name), SourceResult(source.name), lag, since_dt, until_dt,
                             full_refresh)
            report.results.append(_run_source(con, source, ctx, progress))
        facts = incremental.refresh(con, conversion_window_minutes=settings.conversion_window_minutes,
                                    rebuild=rebuild_facts)
        report.facts_mode, report.facts_seconds = facts.mode, facts.seconds
        if after_facts is not None:
            _after_facts(con, after_facts, report)
        if publish:
            done = publish_mod.publish(con, settings.ingest_db_path, settings.warehouse_path)
            report.published = str(settings.warehouse_path)
            report.publish_mode, report.publish_seconds = done.mode, done.seconds
    finally:
        con.close()
    report.seconds = time.monotonic() - t_run
    return report


def _after_facts(con: duckdb.DuckDBPyConnection, hook: Callable[[duckdb.DuckDBPyConnection], None],
                 report: IngestReport) -> None:
    """The caller's step on fresh facts (alerts): a failure is the report's, the data is published anyway."""
    try:
        hook(con)
    except Exception as exc:  # noqa: BLE001 - recorded, never raised: the run's data stays good
        report.hook_error = runs.redact(f"{type(exc).__name__}: {exc}")
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass


def _run_source(con: duckdb.DuckDBPyConnection, source: Source, ctx: RunContext, progress: bool) -> SourceResult:
    """One source, audited in ingest_runs; its failure is recorded (URLs redacted), never raised."""
    result = ctx.result
    bar = _progress(source.name, progress)
    ctx.progress = bar.update
    t0 = time.monotonic()
    try:
        source.run(con, ctx)
    except TwilioAuthError as exc:
        result.status, result.error, result.auth_failed = "failed", runs.redact(str(exc)), True
    except Exception as exc:  # noqa: BLE001 - recorded in ingest_runs and the report, run continues
        result.status, result.error = "failed", runs.redact(f"{type(exc).__name__}: {exc}")
    finally:
        bar.close()
    result.seconds = time.monotonic() - t0
    runs.finish_run(con, ctx.run_id, result)
    return result
