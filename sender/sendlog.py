"""Send-log records in the platform's format, appended to ``sends-campaign-<id>.jsonl``.

One JSON object per line, written whole with one ``write`` and flushed + fsynced before
the ledger marks it logged, so the next ``switchboard ingest`` sees every attempt. A line
torn by a crash mid-write (no trailing newline) is cut off when the file is reopened and
written again from the ledger; event ids are deterministic, so a duplicate line could not
double-count either (ingest upserts by event id).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["SEND_LOG_FIELDS", "SendLog", "SendLogRecord", "iso_z", "send_log_path"]

SEND_LOG_FIELDS = (
    "event_id",
    "sent_at",
    "channel",
    "purpose",
    "template_id",
    "experiment_id",
    "variant",
    "campaign_id",
    "user_id",
    "country",
    "locale",
    "provider_sid",
    "fallback_of",
    "error_code",
)


def iso_z(when: datetime) -> str:
    """ISO-8601 UTC with a Z and milliseconds: ``2026-11-25T15:26:02.123Z``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class SendLogRecord:
    event_id: str
    sent_at: str
    channel: str  # sms | voice
    purpose: str
    template_id: str | None
    experiment_id: str | None
    variant: str | None
    campaign_id: str
    user_id: str
    country: str | None
    locale: str | None
    provider_sid: str | None
    fallback_of: str | None
    error_code: int | None = None  # Twilio's code when it refused the send at create time (no provider_sid)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))


def send_log_path(data_dir: str | Path, campaign_id: str) -> Path:
    return Path(data_dir) / "send_logs" / f"sends-campaign-{campaign_id}.jsonl"


class SendLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        self._ids = {r["event_id"] for r in self.records() if "event_id" in r}

    def _repair_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            keep = data.rfind(b"\n") + 1  # 0 when the only line is torn
            f.truncate(keep)

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def append(self, record: SendLogRecord) -> None:
        """Write one record durably; a record already in the file is not written twice."""
        if record.event_id in self._ids:
            return
        data = (record.to_json() + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._ids.add(record.event_id)
