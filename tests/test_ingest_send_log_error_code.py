"""The send log's optional error_code: validated in every format, stored, and the fallback of
attempt_facts.error_code / error_category when no provider record says why."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from switchboard.ingest import runs, send_logs, warehouse
from tests.test_ingest_files import good_send

CASES = [  # (error_code as written, stored value or None, reject reason or None)
    (21211, 21211, None),
    ("21610", 21610, None),
    ("21211.0", 21211, None),  # a float column written by pandas with NaNs
    ("", None, None),
    (None, None, None),
    ("abc", None, "error_code is not an integer: abc"),
    ("21211.5", None, "error_code is not an integer: 21211.5"),
    ("99999999999", None, "error_code is not an integer: 99999999999"),
]


def _rows() -> list[dict]:
    return [good_send(i, provider_sid=None, error_code=code) for i, (code, _v, _r) in enumerate(CASES)]


def _write(path: Path, fmt: str, rows: list[dict]) -> None:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return
    frame = pd.DataFrame(rows).astype({"error_code": "object"})
    frame["error_code"] = [None if v is None else str(v) for v in frame["error_code"]]
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _load(con: duckdb.DuckDBPyConnection, pattern: str) -> runs.SourceResult:
    result = runs.SourceResult("send-logs")
    return send_logs.ingest_send_logs(con, [pattern], runs.start_run(con, "send-logs"), result)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_error_code_is_validated_stored_and_explained_in_attempt_facts(tmp_path, fmt):
    _write(tmp_path / f"sends-1.{fmt}", fmt, _rows())
    con = warehouse.connect(":memory:")
    warehouse.ensure_schema(con)
    r = _load(con, str(tmp_path / "sends-*"))
    bad = [reason for _c, _v, reason in CASES if reason]
    assert (r.read, r.loaded, r.rejected) == (len(CASES), len(CASES) - len(bad), len(bad))
    stored = dict(con.execute("SELECT event_id, error_code FROM send_log").fetchall())
    reasons = sorted(x[0] for x in con.execute("SELECT reason FROM rejects").fetchall())
    assert reasons == sorted(bad)
    for i, (_code, value, reason) in enumerate(CASES):
        if reason is None:
            assert stored[f"e{i}"] == value, (i, _code)

    warehouse.refresh_facts(con)
    facts = {e: (c, cat) for e, c, cat in con.execute(
        "SELECT event_id, error_code, error_category FROM attempt_facts").fetchall()}
    assert facts["e0"] == (21211, "invalid-number")
    assert facts["e1"] == (21610, "opt-out")
    assert facts["e3"] == (None, None)


def test_provider_code_wins_and_an_unknown_code_is_unknown(tmp_path):
    con = warehouse.connect(":memory:")
    warehouse.ensure_schema(con)
    sid = "SM" + "a" * 32
    con.execute("INSERT INTO twilio_messages (sid, account_sid, status, error_code, source) "
                "VALUES (?, 'AC1', 'undelivered', 30007, 'api')", [sid])
    _write(tmp_path / "sends-1.jsonl", "jsonl", [good_send(1, provider_sid=sid, error_code=21211),
                                                 good_send(2, provider_sid=None, error_code=12345)])
    assert _load(con, str(tmp_path / "sends-*")).loaded == 2
    warehouse.refresh_facts(con)
    facts = {e: (c, cat) for e, c, cat in con.execute(
        "SELECT event_id, error_code, error_category FROM attempt_facts").fetchall()}
    assert facts["e1"] == (30007, "carrier-filtered")  # coalesce(provider's, send log's)
    assert facts["e2"] == (12345, "unknown")


def test_a_warehouse_from_before_error_code_gains_the_column(tmp_path):
    db = tmp_path / "old.duckdb"
    con = warehouse.connect(db)
    warehouse.ensure_schema(con)
    con.execute("ALTER TABLE send_log DROP COLUMN error_code")  # the table as it was created before
    con.close()
    con = warehouse.connect(db)
    warehouse.ensure_schema(con)
    _write(tmp_path / "sends-1.jsonl", "jsonl", [good_send(1, provider_sid=None, error_code=21211)])
    assert _load(con, str(tmp_path / "sends-*")).loaded == 1
    assert con.execute("SELECT error_code, source_file IS NOT NULL FROM send_log").fetchall() == [(21211, True)]


def test_a_refused_send_is_a_known_failure_in_attempt_facts_and_delivery_by_channel(tmp_path):
    """A send Twilio refused at create time (error_code, no provider sid) is is_delivered = false and counts
    as failed, not pending, in delivery_by(channel) and template_stats, on the rollup and the view path."""
    from datetime import date

    from switchboard.analytics import _sql, delivery, templates

    rows = [good_send(1, provider_sid=None, error_code=21211),  # refused: invalid number
            good_send(2, provider_sid=None, error_code=21610),  # refused: opted out
            good_send(3, provider_sid=None)]                    # no provider record yet: unknown
    _write(tmp_path / "sends-1.jsonl", "jsonl", rows)
    con = warehouse.connect(":memory:")
    warehouse.ensure_schema(con)
    assert _load(con, str(tmp_path / "sends-*")).loaded == 3
    warehouse.refresh_facts(con)
    outcome = dict(con.execute("SELECT event_id, is_delivered FROM attempt_facts").fetchall())
    assert outcome == {"e1": False, "e2": False, "e3": None}

    day = date(2026, 10, 20)
    for use_rollups in (True, False):
        _sql.USE_ROLLUPS = use_rollups
        try:
            sms = delivery.delivery_by(con, start=day, end=day, by="channel").set_index("channel").loc["sms"]
            stats = templates.template_stats(con, start=day, end=day)
        finally:
            _sql.USE_ROLLUPS = True
        assert (sms["sent"], sms["delivered"], sms["failed"], sms["pending"]) == (3, 0, 2, 1), use_rollups
        assert sms["delivery_rate"] == 0.0
        assert int(stats["failed"].sum()) == 2, use_rollups
