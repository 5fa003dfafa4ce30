"""``switchboard ingest``: one run, or with ``--every`` a continuous ingest until Ctrl-C (issue 16).

The loop lives at the top (not in ``ingest/``) because each cycle also calls the alerts hook
(``switchboard.alerts.after_ingest``), which reads analytics; ``ingest`` may import only ``core``.

Each cycle is one ``run_ingest``: the sources, the facts, then, inside the same ingest-database session
and before the publish, ``after_facts``: the ``freshness`` view, a heartbeat row (source ``continuous``)
in ``ingest_runs``, and the alerts. One status line per cycle. A cycle that fails (an exception, or a
source that failed) is logged and retried at the next tick, backing off while failures repeat. Every
``--reconcile-every`` a cycle re-reads the full lag window; the ones between re-read a short one.
"""

from __future__ import annotations

import argparse
import importlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import duckdb

from switchboard.core.errors import ConfigError, SwitchboardError
from switchboard.core.settings import Settings
from switchboard.ingest import cli as ingest_cli
from switchboard.ingest import runs
from switchboard.ingest.runs import IngestReport, SourceResult

HEARTBEAT = "continuous"  # the ingest_runs source of a cycle's heartbeat row (read by the freshness view)
MAX_BACKOFF_S = 600.0  # a failing cycle is retried at most this far apart (or --every, if longer)
AfterFacts = Callable[[duckdb.DuckDBPyConnection], None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    ingest_cli.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.every is None:  # one run, then (before it publishes) the alerts, as every continuous cycle does
        return ingest_cli.run(args, after_facts=alerts_hook(Settings.from_env(data_dir=args.data_dir)))
    ingest_cli.check_continuous(args)
    settings = Settings.from_env(data_dir=args.data_dir)
    kwargs = {"sources": args.source, "since": args.since, "send_logs": args.send_logs,
              "bulk_export_dir": args.bulk_export, "spool_dir": args.spool}
    loop = ContinuousIngest(settings, every=args.every, reconcile_every=args.reconcile_every,
                            lag_hours=args.lag_hours, quiet=args.quiet, ingest_kwargs=kwargs)
    previous = stop_on_sigterm()
    try:
        loop.run_forever()
    except KeyboardInterrupt:  # Ctrl-C: a run cut short is marked interrupted by the next one and resumes
        loop.stop()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"Stopped after {loop.cycles:,} run(s), {loop.published:,} published.", file=sys.stderr)
    return 0


def stop_on_sigterm() -> Any:
    """SIGTERM (a service manager, the demo) stops the loop as Ctrl-C does; only the main thread may set it."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def alerts_hook(settings: Settings) -> AfterFacts | None:
    """Helper A's ``switchboard.alerts.after_ingest(settings)``: a callable(con) run before each publish;
    None while that module is not installed."""
    try:
        alerts = importlib.import_module("switchboard.alerts")
    except ImportError:
        return None
    factory = getattr(alerts, "after_ingest", None)
    return factory(settings) if factory else None


@dataclass
class Cycle:
    """What one cycle did, for its status line."""

    number: int
    reconcile: bool
    started: float
    report: IngestReport | None = None
    error: str | None = None
    newest_age_s: float | None = None
    lag_p95_s: float | None = None
    alert_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.report is not None and self.report.ok


@dataclass
class ContinuousIngest:
    """The loop. ``run_forever`` in the CLI's main thread, or ``start``/``stop`` as a thread (the demo).

    ``published`` counts published snapshots; ``wait_published(n)`` lets a caller wait on that progress.
    """

    settings: Settings
    every: float
    reconcile_every: float = 3600.0
    lag_hours: float | None = None
    quiet: bool = False
    ingest_kwargs: dict[str, Any] = field(default_factory=dict)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    cycles: int = 0
    published: int = 0
    failures: int = 0  # consecutive failed cycles (the backoff)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self.last_reconcile: float | None = None  # monotonic time of the last full re-read; None: due now
        self._alerts = alerts_hook(self.settings)

    # ----------------------------------------------------------------- control

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_thread, name="continuous-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_published(self, n: int, timeout: float) -> bool:
        """True once ``n`` snapshots were published (progress, not a clock guess); False at the timeout."""
        return self.wait_for(lambda: self.published >= n, timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Waits until ``predicate()`` holds, checked after every cycle (``cycles``, ``failures``, ``published``)."""
        with self._progress:
            return self._progress.wait_for(predicate, timeout)

    def _run_thread(self) -> None:
        try:
            self.run_forever()
        except SwitchboardError as exc:  # the first cycle's configuration error: say it, stop the loop
            print(f"continuous ingest stopped: {exc}", file=self.err)

    # ----------------------------------------------------------------- the loop

    def run_forever(self) -> None:
        while not self._stop.is_set():
            cycle = self.run_cycle()
            self._stop.wait(self._delay(cycle))

    def _delay(self, cycle: Cycle) -> float:
        """Seconds to the next cycle: the next tick of the schedule, or a backoff while cycles fail."""
        wait = self.every if cycle.ok else min(self.every * 2 ** (self.failures - 1), max(self.every, MAX_BACKOFF_S))
        return max(0.0, cycle.started + wait - time.monotonic())

    def run_cycle(self) -> Cycle:
        """One incremental (or reconciling) run, its status line; raises only the first cycle's ConfigError."""
        from switchboard.ingest.pipeline import run_ingest

        now = time.monotonic()
        reconcile = self.last_reconcile is None or now - self.last_reconcile >= self.reconcile_every
        cycle = Cycle(self.cycles + 1, reconcile, now)
        try:
            # The single call site of the alerts hook: run_ingest calls after_facts before it publishes.
            cycle.report = run_ingest(self.settings, lag_hours=self._lag(reconcile), progress=False,
                                      after_facts=lambda con: self._after_facts(con, cycle), **self.ingest_kwargs)
        except ConfigError as exc:
            if self.cycles == 0:  # bad flags or credentials: nothing will ever run, exit 2
                raise
            cycle.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - logged, retried at the next tick
            cycle.error = runs.redact(f"{type(exc).__name__}: {exc}")
        self._finish(cycle, reconcile)
        return cycle

    def _lag(self, reconcile: bool) -> float:
        full = self.settings.lag_hours if self.lag_hours is None else self.lag_hours
        return full if reconcile else min(full, ingest_cli.TICK_LAG_HOURS)

    def _finish(self, cycle: Cycle, reconcile: bool) -> None:
        if reconcile and cycle.report is not None and cycle.report.published:
            self.last_reconcile = cycle.started
        failures = 0 if cycle.ok else self.failures + 1
        self.failures = failures
        line = status_line(cycle, self._delay(cycle))
        if cycle.ok and not self.quiet:
            print(line, file=self.out, flush=True)
        elif not cycle.ok:
            print(line, file=self.err, flush=True)
        with self._progress:  # after the line: a waiter that sees the count also finds the line written
            self.cycles += 1
            self.published += 1 if cycle.report is not None and cycle.report.published else 0
            self._progress.notify_all()

    # ----------------------------------------------------------------- inside the run, before the publish

    def _after_facts(self, con: duckdb.DuckDBPyConnection, cycle: Cycle) -> None:
        since = heartbeat(con)
        row = con.execute(
            "SELECT min(newest_age_s), max(lag_p95_s) FROM freshness WHERE run_id > ? "
            "AND source IN ('twilio', 'receiver')", [since]).fetchall()[0]
        cycle.newest_age_s, cycle.lag_p95_s = row
        if self._alerts is not None:
            try:
                self._alerts(con)
            except Exception as exc:  # noqa: BLE001 - an alert failure must not stop the data's publish
                cycle.alert_error = runs.redact(f"{type(exc).__name__}: {exc}")


def heartbeat(con: duckdb.DuckDBPyConnection) -> int:
    """A ``continuous`` row in ingest_runs with the cycle's totals, finished just before the publish;
    returns the previous heartbeat's run id (0 for the first), the start of this cycle's runs."""
    run_id = runs.start_run(con, HEARTBEAT)
    previous = con.execute("SELECT coalesce(max(run_id), 0) FROM ingest_runs WHERE source = ? AND run_id < ?",
                           [HEARTBEAT, run_id]).fetchall()[0][0]
    read, loaded, rejected, failed = con.execute(
        "SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0), coalesce(sum(rows_rejected), 0), "
        "string_agg(source, ', ') FILTER (WHERE status = 'failed') FROM ingest_runs WHERE run_id > ? AND run_id < ?",
        [previous, run_id]).fetchall()[0]
    result = SourceResult(HEARTBEAT, read=read, loaded=loaded, rejected=rejected,
                          error=f"failed: {failed}" if failed else None)
    runs.finish_run(con, run_id, result)
    return int(previous)


def _seconds(value: float | None) -> str:
    """Seconds for a status line: "42 s", "7 min", "5 h", "35 days"."""
    if value is None or math.isnan(value):
        return "?"
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if value < limit:
            return f"{value / size:,.0f} {unit}"
    return f"{value / 86400:,.0f} days"


def status_line(cycle: Cycle, next_in: float) -> str:
    """``23:10:05Z run 12 ok in 2.3 s: twilio +120, receiver +340; newest status 4 s old (lag p95 31 s); next in 60 s``."""
    stamp = datetime.now(UTC).strftime("%H:%M:%SZ")
    kind = " (reconcile)" if cycle.reconcile else ""
    took = time.monotonic() - cycle.started
    if cycle.report is None:
        return f"{stamp} run {cycle.number}{kind} FAILED in {took:.1f} s: {cycle.error}; retrying in {next_in:.0f} s"
    parts = ", ".join(f"{r.source} +{r.loaded:,}" + (f" ({r.status})" if r.status != "ok" else "")
                      for r in cycle.report.results)
    verdict = "ok" if cycle.report.ok else "FAILED"
    text = f"{stamp} run {cycle.number}{kind} {verdict} in {took:.1f} s: {parts}"
    if cycle.newest_age_s is not None:
        text += f"; newest status {_seconds(cycle.newest_age_s)} old (lag p95 {_seconds(cycle.lag_p95_s)})"
    for r in cycle.report.results:
        if r.error:
            text += f"; {r.source}: {runs.redact(r.error)}"
    if cycle.alert_error:
        text += f"; alerts failed: {cycle.alert_error}"
    if getattr(cycle.report, "hook_error", None):
        text += f"; after-facts step failed: {cycle.report.hook_error}"
    return text + (f"; next in {next_in:.0f} s" if cycle.report.ok else f"; retrying in {next_in:.0f} s")
