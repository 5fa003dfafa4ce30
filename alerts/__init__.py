"""Alerts: tell the team when delivery breaks, and when someone is pumping our OTPs (issue 17).

* ``rules``: built-in rules and the optional ``alerts.toml``;
* ``evaluate``: one evaluation of every rule (``analytics.insights`` for error/delivery/cost, rate tests
  for fallback, latency and opt-outs, ``pumping`` for SMS pumping), false discoveries controlled with
  Benjamini-Hochberg over every cell checked;
* ``store``: the ``alerts`` table and its transitions (opened, worse, resolved), the timeline and the outbox;
* ``notify``: delivery of the outbox (webhook Slack/JSON, SMTP) with retries, every attempt recorded;
* ``read``: what the dashboard's Alerts page shows.

Layer: imports ``analytics`` and ``core``; the top (``switchboard/``) and the dashboard import it.
The ingest calls ``after_ingest(settings)``'s hook with its writer connection after the facts are current
and before the snapshot is published, so the alerts travel with the snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from switchboard.alerts import evaluate, notify, rules, store
from switchboard.alerts.evaluate import Evaluation
from switchboard.alerts.rules import Config
from switchboard.core.errors import ConfigError
from switchboard.core.settings import Settings

__all__ = ["AfterIngest", "Outcome", "after_ingest", "check", "ensure", "run"]

ensure = store.ensure
HOOK_DELIVERY_BUDGET = 3.0  # seconds the hook may spend delivering while the ingest holds the writer


@dataclass
class Outcome:
    evaluation: Evaluation
    changes: list[store.Change]
    queued: list[str] = field(default_factory=list)
    delivery: notify.Delivery | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the ingest report and ``alerts check``."""
        counts: dict[str, int] = {}
        for c in self.changes:
            counts[c.event] = counts.get(c.event, 0) + 1
        parts = [f"{n} {e}" for e, n in sorted(counts.items()) if e != "updated"]
        still = counts.get("updated", 0)
        text = ", ".join(parts) or "nothing new"
        if still:
            text += f", {still} still open"
        if self.delivery is not None:
            d = self.delivery
            text += f"; notifications: {d.sent} sent, {d.failed_attempts} failed attempt(s), {d.left} waiting"
        if self.evaluation.skipped:
            text += "; skipped " + "; ".join(f"{k}: {v}" for k, v in sorted(self.evaluation.skipped.items()))
        return f"alerts: {text} ({self.seconds:.2f} s)"


def run(con: duckdb.DuckDBPyConnection, config: Config, *, as_of: datetime | None = None,
        dry_run: bool = False) -> Outcome:
    """Evaluate, then (unless ``dry_run``) write the alert state and queue the notifications."""
    t0 = time.perf_counter()
    if dry_run:
        ev = evaluate.evaluate(con, config, as_of)
        changes = store.plan(con, ev, config) if _has_alerts_table(con) else _plan_fresh(ev)
        return Outcome(ev, changes, seconds=time.perf_counter() - t0)
    ensure(con)
    ev = evaluate.evaluate(con, config, as_of)
    own = _begin(con)  # state and outbox change together or not at all
    try:
        changes = store.plan(con, ev, config)
        queued = store.apply(con, changes, ev.as_of, config) if ev.as_of is not None else []
        if own:
            con.execute("COMMIT")
    except BaseException:
        if own:
            con.execute("ROLLBACK")
        raise
    return Outcome(ev, changes, queued, seconds=time.perf_counter() - t0)


def _begin(con: duckdb.DuckDBPyConnection) -> bool:
    """Start a transaction unless the caller has one open (then it commits ours with its own)."""
    try:
        con.execute("BEGIN TRANSACTION")
        return True
    except duckdb.TransactionException:
        return False


def _has_alerts_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                            "AND table_name = 'alerts'").fetchone()[0])


def _plan_fresh(ev: Evaluation) -> list[store.Change]:
    """A dry run on a warehouse without alert tables: every finding would open an alert."""
    return [store.Change("opened", f.alert_id, f.rule, True, f, None) for f in ev.findings]


@dataclass
class AfterIngest:
    """The ingest's ``after_facts`` hook: evaluates and writes state inside the writer's run, delivers
    what it can within ``HOOK_DELIVERY_BUDGET`` seconds; ``deliver()`` after publish sends the rest."""

    settings: Settings
    config_path: Path | None = None
    last: Outcome | None = None

    def config(self) -> Config:
        return rules.load(self.config_path, self.settings)

    def __call__(self, con: duckdb.DuckDBPyConnection) -> None:
        config = self.config()
        outcome = run(con, config)
        outcome.delivery = notify.deliver(con, config, budget_seconds=HOOK_DELIVERY_BUDGET)
        self.last = outcome

    def deliver(self) -> notify.Delivery:
        """Deliver the pending notifications from the ingest DB (call it after publish, writer closed)."""
        con = duckdb.connect(str(self.settings.ingest_db_path))
        try:
            ensure(con)
            return notify.deliver(con, self.config())
        finally:
            con.close()


def after_ingest(settings: Settings | None = None, config_path: Path | str | None = None) -> AfterIngest:
    """The hook for ``run_ingest(after_facts=...)``. The configuration is read at each call, so an edited
    alerts.toml applies from the next run; a bad file raises ConfigError now, before the ingest starts."""
    hook = AfterIngest(settings or Settings.from_env(), Path(config_path) if config_path else None)
    hook.config()
    return hook


def check(settings: Settings, *, config_path: Path | str | None = None, dry_run: bool = False) -> Outcome:
    """``switchboard alerts check``: evaluate now. A dry run reads the published snapshot and writes
    nothing; otherwise the ingest DB is opened read-write (the caller publishes afterwards)."""
    config = rules.load(config_path, settings)
    path = settings.warehouse_path if dry_run else settings.ingest_db_path
    if not path.exists():
        raise ConfigError(f"No warehouse at {path}: run `switchboard ingest` first")
    try:
        con = duckdb.connect(str(path), read_only=dry_run)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise ConfigError("an ingest is running and holds the warehouse; it evaluates the alerts itself at "
                              "its end, or run this again when it has finished") from None
        raise
    try:
        outcome = run(con, config, dry_run=dry_run)
        if not dry_run:
            outcome.delivery = notify.deliver(con, config)
            con.execute("CHECKPOINT")
        return outcome
    finally:
        con.close()


def describe(outcome: Outcome, config: Config, *, dry_run: bool) -> list[str]:
    """Lines for the terminal: each change with its sentence, then the summary."""
    verb = "would be" if dry_run else "is"
    lines = []
    for c in outcome.changes:
        if c.event == "updated":
            continue
        text = c.finding.sentence if c.finding else (c.previous or {}).get("sentence", "")
        channels = ", ".join(config.channels) or "dashboard only"
        note = f" [notify: {channels}]" if c.notify else " [quiet period: not notified]"
        lines.append(f"{c.event.upper():9} {c.alert_id} {verb} {c.event}{note}\n          {text}")
    lines.append(outcome.summary())
    return lines
