"""The world as files: the platform's send logs and conversions per UTC day (JSON lines, CSV or
Parquet) with ``ground_truth.json``, and Twilio BulkExport-style message day files."""

from __future__ import annotations

import gzip
import json
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from switchboard.sandbox.scenario import World


def _day_files(frame: pd.DataFrame, ms_col: str):
    days = frame[ms_col].to_numpy() // 86_400_000
    if len(days) == 0:
        return
    bounds = np.flatnonzero(np.diff(days)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [len(days)]])
    for a, b in zip(starts, stops):
        d = date(1970, 1, 1) + timedelta(days=int(days[a]))
        yield d, frame.iloc[a:b]


SEND_COLUMNS = ["event_id", "sent_at", "channel", "purpose", "template_id", "experiment_id", "variant",
                "campaign_id", "user_id", "country", "locale", "provider_sid", "fallback_of"]
CONVERSION_COLUMNS = ["event_id", "user_id", "conversion_type", "occurred_at"]


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "jsonl":
        frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
    elif fmt == "csv":
        frame.to_csv(tmp, index=False)
    elif fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    else:
        raise ValueError(f"unknown send-log format {fmt!r} (jsonl, csv or parquet)")
    tmp.replace(path)  # readers never see a half-written file


write_frame = _write  # live traffic (``sandbox.live``) writes its send-log files the same way


def write_send_logs(world: World, directory: Path, fmt: str = "jsonl") -> list[Path]:
    """One ``sends-YYYY-MM-DD.<ext>`` and ``conversions-YYYY-MM-DD.<ext>`` per UTC day, plus
    ``ground_truth.json``; stale day files of an earlier world in ``directory`` are removed.
    Returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for d, part in _day_files(world.send_log, "_ms"):
        path = directory / f"sends-{d.isoformat()}.{fmt}"
        _write(part[SEND_COLUMNS].reset_index(drop=True), path, fmt)
        written.append(path)
    for d, part in _day_files(world.conversions, "_ms"):
        path = directory / f"conversions-{d.isoformat()}.{fmt}"
        _write(part[CONVERSION_COLUMNS].reset_index(drop=True), path, fmt)
        written.append(path)
    # Day files of an earlier, different world would mix two histories (same event ids, other
    # facts): remove the ones this world did not write. Only the sandbox's own day-file names are
    # touched (the sender's sends-campaign-*.jsonl and anything else stay).
    keep = {p.name for p in written}
    for old in directory.iterdir():
        if _DAY_FILE.fullmatch(old.name) and old.name not in keep:
            old.unlink()
    gt = directory / "ground_truth.json"
    tmp = gt.with_name(gt.name + ".tmp")
    tmp.write_text(json.dumps(world.ground_truth, indent=2, default=str))
    tmp.replace(gt)
    written.append(gt)
    return written


# Day files, and the live-traffic files of an earlier run (``sends-live-20260601T120310-000001.jsonl``).
_DAY_FILE = re.compile(r"(sends|conversions)-(\d{4}-\d{2}-\d{2}|live-\d{8}T\d{6}-\d{6})\.(jsonl|csv|parquet)")


def write_bulk_export(world: World, directory: Path, account_sid: str | None = None) -> list[Path]:
    """Twilio BulkExport-style day files ``Messages/YYYY-MM-DD.json.gz``: gzipped JSON lines, one
    message per line, final statuses. As Twilio documents the format: records like the Message
    resource, but times in UTC ISO-8601 and no price_unit, api_version, error_message, uri or
    subresource_uris."""
    from switchboard.sandbox.render import iso_seconds

    directory = Path(directory) / "Messages"
    directory.mkdir(parents=True, exist_ok=True)
    m = world.messages
    acct = account_sid or world.accounts[0]["sid"]
    ai = world.account_sids.index(acct)
    m = m[m["account_idx"].to_numpy() == ai]  # members' replies included, as Twilio's export has them
    frame = pd.DataFrame({"_ms": m["date_created"].to_numpy() * 1000})
    written = []
    bodies = world.messages.attrs["bodies"]
    for d, part in _day_files(frame, "_ms"):
        a, b = int(part.index[0]), int(part.index[-1]) + 1
        rows = m.iloc[a:b]
        cols = {c: rows[c].astype(object).to_numpy() if isinstance(rows[c].dtype, pd.CategoricalDtype)
                else rows[c].to_numpy() for c in rows.columns}
        path = directory / f"{d.isoformat()}.json.gz"
        tmp = path.with_name(path.name + ".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            for k in range(b - a):
                err = int(cols["error_code"][k])
                mg = cols["messaging_service_sid"][k]
                fh.write(json.dumps({
                    "sid": cols["sid"][k],
                    "account_sid": acct,
                    "messaging_service_sid": mg if isinstance(mg, str) else None,
                    "from": cols["from"][k],
                    "to": cols["to"][k],
                    "body": bodies[int(cols["body_key"][k])].replace("{code}", str(int(cols["code"][k]))),
                    "status": cols["status"][k],
                    "direction": str(cols["direction"][k]) if "direction" in cols else "outbound-api",
                    "num_segments": str(int(cols["num_segments"][k])),
                    "num_media": "0",
                    "price": f"{-float(cols['price'][k]):.5f}",
                    "error_code": err or None,
                    "date_created": iso_seconds(int(cols["date_created"][k])),
                    "date_sent": iso_seconds(int(cols["date_sent"][k])),
                    "date_updated": iso_seconds(int(cols["final_at"][k])),
                }, ensure_ascii=False) + "\n")
        tmp.replace(path)
        written.append(path)
    return written
