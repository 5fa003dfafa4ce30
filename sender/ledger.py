"""The idempotency ledger: one row per planned send, written around every API call.

Why SQLite (stdlib ``sqlite3``) in WAL mode: each state change is a one-row transaction
that survives the process being killed the instant after it commits (``synchronous=FULL``
also survives a power cut); readers (the dashboard showing progress, a second terminal)
never block the sender or see half a write; and it needs nothing installed. DuckDB is
built for analytics and holds one writer lock per file, which would shut the dashboard
out while a campaign runs; a JSONL file would need its own torn-write recovery and a
scan for every lookup.

Protocol per send (key = ``campaign_id:user_id:step``):

1. ``record_intent`` commits *before* the API call (state ``intent``, with the time, the
   number, the sender and hashes of the body).
2. The API call.
3. ``record_sent`` (sid, status) or ``record_failed`` (Twilio error code and name).
4. The send-log record is appended, then ``mark_logged``.

A row left at ``intent`` means the process died around the API call; the runner asks
Twilio whether that message exists before sending again (see ``sender.runner``). A second
sender on the same campaign is refused by an exclusive ``flock`` on a sidecar lock file,
which the kernel releases however the holder dies.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from switchboard.core.errors import SwitchboardError

__all__ = ["Ledger", "LedgerBusy", "LedgerRow", "ledger_path", "sids_in_other_ledgers"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sends (
    key           TEXT PRIMARY KEY,      -- campaign_id:user_id:step
    campaign_id   TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    step          TEXT NOT NULL,         -- sms | voice
    event_id      TEXT NOT NULL,         -- send-log event id (deterministic from key)
    to_number     TEXT NOT NULL,
    sender        TEXT NOT NULL,         -- From number or MessagingServiceSid
    body_hashes   TEXT NOT NULL,         -- sha256 of the body as sent (and as Smart Encoding may rewrite it)
    variant       TEXT,
    fallback_of   TEXT,                  -- event id of the SMS a call falls back from
    state         TEXT NOT NULL,         -- intent | sent | failed
    intent_at     TEXT NOT NULL,         -- ISO-8601 UTC of the latest intent
    done_at       TEXT,
    attempts      INTEGER NOT NULL DEFAULT 1,
    provider_sid  TEXT,
    provider_created_at TEXT,
    status        TEXT,                  -- the provider's status when last seen
    error_code    INTEGER,
    error_name    TEXT,
    recovered     INTEGER NOT NULL DEFAULT 0,  -- 1: found at the provider after a crash, not re-sent
    logged        INTEGER NOT NULL DEFAULT 0   -- 1: the send-log record is written
);
CREATE INDEX IF NOT EXISTS sends_state ON sends(state);
"""


class LedgerBusy(SwitchboardError, RuntimeError):
    """Another sender process holds this campaign's ledger."""


@dataclass(frozen=True)
class LedgerRow:
    key: str
    campaign_id: str
    user_id: str
    step: str
    event_id: str
    to_number: str
    sender: str
    body_hashes: str
    variant: str | None
    fallback_of: str | None
    state: str
    intent_at: str
    done_at: str | None
    attempts: int
    provider_sid: str | None
    provider_created_at: str | None
    status: str | None
    error_code: int | None
    error_name: str | None
    recovered: int
    logged: int

    @property
    def intent_time(self) -> datetime:
        return datetime.fromisoformat(self.intent_at)


def ledger_path(data_dir: str | Path, campaign_id: str) -> Path:
    return Path(data_dir) / "ledger" / f"{campaign_id}.sqlite"


def sids_in_other_ledgers(path: Path) -> set[str]:
    """Provider SIDs recorded by the other campaigns' ledgers in the same folder (read-only)."""
    sids: set[str] = set()
    for other in Path(path).parent.glob("*.sqlite"):
        if other.resolve() == Path(path).resolve():
            continue
        try:
            con = sqlite3.connect(f"file:{other}?mode=ro", uri=True, timeout=5)
            try:
                sids.update(
                    r[0] for r in con.execute("SELECT provider_sid FROM sends WHERE provider_sid IS NOT NULL")
                )
            finally:
                con.close()
        except sqlite3.Error:  # not a ledger, or one being created: nothing to exclude
            continue
    return sids


def _iso(at: datetime | None) -> str:
    return (at or datetime.now(UTC)).isoformat()


class Ledger:
    """Open with ``Ledger.open(path)`` (takes the campaign's lock); use as a context manager."""

    def __init__(self, path: Path, con: sqlite3.Connection, lock_fd: int | None):
        self.path = path
        self.con = con
        self._lock_fd = lock_fd

    @classmethod
    def open(cls, path: str | Path, *, lock: bool = True) -> Ledger:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = None
        if lock:
            fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LedgerBusy(
                    f"another sender is already running this campaign (lock {path.name}.lock is held); "
                    "wait for it to finish or stop it first"
                ) from None
        con = sqlite3.connect(path, isolation_level=None, timeout=30)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.executescript(_SCHEMA)
        return cls(path, con, fd)

    @classmethod
    def open_readonly(cls, path: str | Path) -> Ledger:
        """For progress displays: no lock, no writes."""
        con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=30)
        con.row_factory = sqlite3.Row
        return cls(Path(path), con, None)

    def close(self) -> None:
        self.con.close()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta
    def get_meta(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- reads
    def get(self, key: str) -> LedgerRow | None:
        row = self.con.execute("SELECT * FROM sends WHERE key = ?", (key,)).fetchone()
        return None if row is None else LedgerRow(**dict(row))

    def rows(self, *, state: str | None = None, step: str | None = None) -> list[LedgerRow]:
        sql, args = "SELECT * FROM sends WHERE 1=1", []
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        if step is not None:
            sql += " AND step = ?"
            args.append(step)
        return [LedgerRow(**dict(r)) for r in self.con.execute(sql + " ORDER BY rowid", args)]

    def known_sids(self) -> set[str]:
        return {
            r[0] for r in self.con.execute("SELECT provider_sid FROM sends WHERE provider_sid IS NOT NULL")
        }

    def __iter__(self) -> Iterator[LedgerRow]:
        return iter(self.rows())

    # -- writes: each one is its own committed transaction (autocommit)
    def record_intent(
        self,
        *,
        key: str,
        campaign_id: str,
        user_id: str,
        step: str,
        event_id: str,
        to_number: str,
        sender: str,
        body_hashes: str,
        variant: str | None,
        fallback_of: str | None,
        at: datetime | None = None,
    ) -> None:
        when = (at or datetime.now(UTC)).isoformat()
        self.con.execute(
            """
            INSERT INTO sends(key, campaign_id, user_id, step, event_id, to_number, sender, body_hashes, variant,
                              fallback_of, state, intent_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?)
            ON CONFLICT(key) DO UPDATE SET intent_at = excluded.intent_at, attempts = sends.attempts + 1,
                                           body_hashes = excluded.body_hashes, sender = excluded.sender
            WHERE sends.state = 'intent'
            """,
            (
                key,
                campaign_id,
                user_id,
                step,
                event_id,
                to_number,
                sender,
                body_hashes,
                variant,
                fallback_of,
                when,
            ),
        )

    def record_sent(
        self,
        key: str,
        *,
        sid: str,
        status: str | None,
        created_at: datetime | None,
        recovered: bool = False,
        at: datetime | None = None,
    ) -> None:
        self.con.execute(
            "UPDATE sends SET state = 'sent', provider_sid = ?, status = ?, provider_created_at = ?, done_at = ?, "
            "recovered = ? WHERE key = ?",
            (sid, status, created_at.isoformat() if created_at else None, _iso(at), int(recovered), key),
        )

    def record_failed(
        self, key: str, *, error_code: int | None, error_name: str, at: datetime | None = None
    ) -> None:
        self.con.execute(
            "UPDATE sends SET state = 'failed', error_code = ?, error_name = ?, done_at = ? WHERE key = ?",
            (error_code, error_name, _iso(at), key),
        )

    def withdraw_intent(self, key: str) -> None:
        """Forget an intent whose request Twilio definitively refused (account-level 401/403, 429s to the
        end): nothing was created, so the next run need not wait out an in-flight window for it."""
        self.con.execute("DELETE FROM sends WHERE key = ? AND state = 'intent'", (key,))

    def record_status(
        self, key: str, status: str, *, error_code: int | None = None, error_name: str | None = None
    ) -> None:
        self.con.execute(
            "UPDATE sends SET status = ?, error_code = COALESCE(?, error_code), error_name = COALESCE(?, error_name) "
            "WHERE key = ?",
            (status, error_code, error_name, key),
        )

    def mark_logged(self, key: str) -> None:
        self.con.execute("UPDATE sends SET logged = 1 WHERE key = ?", (key,))

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.con.execute("SELECT * FROM sends ORDER BY rowid")]
