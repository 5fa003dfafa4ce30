"""Send logs, conversions and BulkExport files: validation, rejects, growth, idempotence."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchboard.core.settings import Settings
from switchboard.ingest import runs, send_logs, warehouse
from switchboard.ingest.pipeline import run_ingest


def good_send(i: int, **over) -> dict:
    row = {"event_id": f"e{i}", "sent_at": "2026-10-20T10:00:00Z", "channel": "sms", "purpose": "password_reset",
           "template_id": "pr_standard", "experiment_id": None, "variant": None, "campaign_id": None,
           "user_id": f"u{i}", "country": "BR", "locale": "pt-BR", "provider_sid": f"SM{i:032x}", "fallback_of": None}
    row.update(over)
    return row


def fresh() -> duckdb.DuckDBPyConnection:
    con = warehouse.connect(":memory:")
    warehouse.ensure_schema(con)
    return con


def load(con, pattern: str, full_refresh: bool = False) -> runs.SourceResult:
    result = runs.SourceResult("send-logs")
    run_id = runs.start_run(con, "send-logs")
    return send_logs.ingest_send_logs(con, [pattern], run_id, result, full_refresh=full_refresh)


def write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_each_format_loads_and_rejects_with_reasons(tmp_path, fmt):
    import pandas as pd

    rows = [good_send(i) for i in range(50)]
    rows[3]["sent_at"] = "yesterday"
    rows[4]["channel"] = "pigeon"
    rows[5]["event_id"] = None
    rows[6]["user_id"] = ""
    frame = pd.DataFrame(rows)
    path = tmp_path / f"sends-1.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, rows)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    con = fresh()
    result = load(con, str(tmp_path / "sends-*"))
    assert (result.read, result.loaded, result.rejected) == (50, 46, 4)
    reasons = sorted(r[0] for r in con.execute("SELECT reason FROM rejects").fetchall())
    assert reasons == ["bad sent_at timestamp: yesterday", "missing event_id", "missing user_id",
                       "unknown channel: pigeon"]
    assert con.execute("SELECT count(*) FROM send_log").fetchone()[0] == 46
    assert con.execute("SELECT count(*) FROM rejects WHERE raw IS NULL OR line IS NULL").fetchone()[0] == 0


def test_malformed_and_truncated_jsonl_lines_become_rejects(tmp_path):
    lines = [json.dumps(good_send(1)), "{not json", "", "[1, 2]", json.dumps(good_send(2)), '"just a string"',
             json.dumps(good_send(3, sent_at=12345)), json.dumps(good_send(4, user_id={"a": 1}))]
    path = tmp_path / "sends-x.jsonl"
    path.write_text("\n".join(lines) + '\n{"event_id": "e9", "sent_')  # last line cut mid-write
    con = fresh()
    result = load(con, str(path))
    assert result.read == result.loaded + result.rejected == 8  # blank lines are not records
    assert result.loaded == 2
    got = dict(con.execute("SELECT line, reason FROM rejects").fetchall())
    assert got[2].startswith("malformed JSON") and got[9].startswith("malformed JSON")
    assert got[4] == "not a JSON object" and got[6] == "not a JSON object"
    assert got[7].startswith("bad sent_at") and got[8] == "user_id is not a string"


_junk = st.one_of(
    st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s),
    st.builds(json.dumps, st.dictionaries(st.sampled_from(list(send_logs.SEND_COLUMNS) + ["x"]),
                                           st.one_of(st.none(), st.integers(), st.text(max_size=8),
                                                     st.lists(st.integers(), max_size=2)), max_size=6)),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(good=st.integers(0, 20), junk=st.lists(_junk, max_size=15), seed=st.randoms())
def test_loaded_plus_rejected_equals_read_for_any_lines(tmp_path_factory, good, junk, seed):
    lines = [json.dumps(good_send(i)) for i in range(good)] + list(junk)
    seed.shuffle(lines)
    path = tmp_path_factory.mktemp("hyp") / "sends-h.jsonl"
    path.write_text("\n".join(lines) + "\n")
    con = fresh()
    result = load(con, str(path))
    records = sum(1 for line in lines if line.strip(' \t\r'))  # JSON whitespace only: blank
    assert result.read == records
    assert result.loaded + result.rejected == result.read
    assert result.loaded >= good
    assert con.execute("SELECT count(*) FROM rejects WHERE reason IS NULL OR reason = ''").fetchone()[0] == 0
    assert con.execute("SELECT count(*) - count(DISTINCT event_id) FROM send_log").fetchone()[0] == 0


def test_file_growth_reloads_safely_and_unchanged_files_are_skipped(tmp_path):
    path = tmp_path / "sends-g.jsonl"
    write_jsonl(path, [good_send(i) for i in range(10)])
    with path.open("a") as fh:
        fh.write('{"event_id": "e10", "sent_at": "2026-10-2')  # the writer is mid-line
    con = fresh()
    first = load(con, str(path))
    assert (first.loaded, first.rejected) == (10, 1)
    assert load(con, str(path)).read == 0  # unchanged: skipped
    with path.open("a") as fh:  # the writer finishes the line and adds more
        fh.write('0T10:00:00Z", "channel": "sms", "user_id": "u10"}\n')
        for i in range(11, 15):
            fh.write(json.dumps(good_send(i)) + "\n")
    second = load(con, str(path))
    assert (second.read, second.loaded, second.rejected) == (15, 15, 0)
    assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM send_log").fetchone() == (15, 15)
    assert con.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0  # the old reject was superseded


def test_later_rows_replace_earlier_ones_by_event_id(tmp_path):
    write_jsonl(tmp_path / "sends-a.jsonl", [good_send(1, purpose="old"), good_send(2)])
    write_jsonl(tmp_path / "sends-b.jsonl", [good_send(1, purpose="new"), good_send(1, purpose="newest")])
    con = fresh()
    result = load(con, str(tmp_path / "sends-*"))
    assert result.read == 4 and result.rejected == 0
    assert con.execute("SELECT purpose FROM send_log WHERE event_id = 'e1'").fetchall() == [("newest",)]
    assert con.execute("SELECT count(*) FROM send_log").fetchone()[0] == 2


def test_conversions(tmp_path):
    write_jsonl(tmp_path / "conversions-1.jsonl", [
        {"event_id": "c1", "user_id": "u1", "conversion_type": "password_reset_completed",
         "occurred_at": "2026-10-20T10:03:00Z"},
        {"event_id": "c2", "user_id": "u2", "conversion_type": "x", "occurred_at": "soon"},
        {"event_id": "c3", "user_id": "u3", "occurred_at": "2026-10-20T10:03:00Z"},
    ])
    con = fresh()
    result = load(con, str(tmp_path / "conversions-*"))
    assert (result.loaded, result.rejected) == (1, 2)
    assert sorted(r[0] for r in con.execute("SELECT reason FROM rejects").fetchall()) == [
        "bad occurred_at timestamp: soon", "missing conversion_type"]


def test_bulk_export(tmp_path, small_world):
    from switchboard.sandbox.world import write_bulk_export

    files = write_bulk_export(small_world, tmp_path / "bulk")
    acct = small_world.accounts[0]["sid"]
    expected = int((small_world.messages["account_idx"] == 0).sum())
    # one malformed line in one file: a reject, not a crash
    with gzip.open(files[0], "at") as fh:
        fh.write('{"sid": "SMbroken", "status": \n')
    report = run_ingest(Settings(data_dir=tmp_path), sources="bulk-export", bulk_export_dir=tmp_path / "bulk",
                        progress=False)
    assert report.ok, report.summary()
    r = report.result("bulk-export")
    assert (r.loaded, r.rejected) == (expected, 1)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*), min(source), max(source), min(account_sid) FROM twilio_messages "
                       ).fetchone() == (expected, "bulk_export", "bulk_export", acct)
    assert con.execute("SELECT count(*) FROM twilio_messages WHERE to_country IS NULL OR price_usd IS NULL "
                       "OR date_sent IS NULL OR body_encoding IS NULL").fetchone()[0] == 0
    raw = con.execute("SELECT raw FROM rejects").fetchone()[0]
    assert "SMbroken" in raw
    con.close()
    again = run_ingest(Settings(data_dir=tmp_path), sources="bulk-export", bulk_export_dir=tmp_path / "bulk",
                       progress=False)
    assert again.result("bulk-export").read == 0


def test_bulk_export_never_overwrites_a_newer_api_status(tmp_path):
    from switchboard.ingest.twilio_api import MESSAGES, upsert_records

    con = fresh()
    newer = {"sid": "SM1", "account_sid": "AC1", "to": "+5511987654321", "status": "delivered",
             "date_sent": "Mon, 19 Oct 2026 10:00:00 +0000", "date_updated": "Mon, 19 Oct 2026 10:00:09 +0000",
             "price": "-0.05", "price_unit": "USD", "body": "hi"}
    con.execute("BEGIN")
    upsert_records(con, MESSAGES, [newer], run_id=1, source="api", location="p", reject_source="t")
    older = {**newer, "status": "sent", "date_updated": "2026-10-19T10:00:01Z", "price": None}
    upsert_records(con, MESSAGES, [older], run_id=2, source="bulk_export", location="f", reject_source="t")
    con.execute("COMMIT")
    assert con.execute("SELECT status, source, price_usd::DOUBLE FROM twilio_messages").fetchall() == [
        ("delivered", "api", pytest.approx(0.05))]


def test_a_batch_of_files_keeps_per_file_lines_and_a_corrupt_file_is_a_reject(tmp_path):
    write_jsonl(tmp_path / "sends-1.jsonl", [good_send(i) for i in range(5)])
    write_jsonl(tmp_path / "sends-2.jsonl", [good_send(10), good_send(11), good_send(12, channel="fax")])
    (tmp_path / "sends-3.parquet").write_bytes(b"PAR1 this is not parquet")
    con = fresh()
    result = load(con, str(tmp_path / "sends-*"))
    # the unreadable file is one record read and rejected (so the counts match `rejects`), and fails the source
    assert (result.read, result.loaded, result.rejected) == (9, 7, 2)
    assert result.status == "failed" and "sends-3.parquet" in result.error
    rejects = con.execute("SELECT location, line, reason FROM rejects ORDER BY location").fetchall()
    assert rejects[0] == (str(tmp_path / "sends-2.jsonl"), 3, "unknown channel: fax")
    assert rejects[1][0].endswith("sends-3.parquet") and rejects[1][2].startswith("unreadable file")
    files = dict(con.execute("SELECT path, rows_loaded FROM ingest_files").fetchall())
    assert files == {str(tmp_path / "sends-1.jsonl"): 5, str(tmp_path / "sends-2.jsonl"): 2}


def test_the_same_sid_twice_in_one_batch_keeps_the_newest():
    from switchboard.ingest.twilio_api import MESSAGES, upsert_records

    con = fresh()
    base = {"sid": "SM9", "account_sid": "AC1", "to": "+5511987654321", "date_sent": "Mon, 19 Oct 2026 10:00:00 +0000"}
    recs = [{**base, "status": "delivered", "date_updated": "Mon, 19 Oct 2026 10:00:09 +0000"},
            {**base, "status": "sent", "date_updated": "Mon, 19 Oct 2026 10:00:01 +0000"}]
    con.execute("BEGIN")
    good, bad, top = upsert_records(con, MESSAGES, recs, run_id=1, source="api", location="p", reject_source="t")
    con.execute("COMMIT")
    assert (good, bad) == (2, [])
    assert top.startswith("2026-10-19T10:00:00")
    assert con.execute("SELECT status FROM twilio_messages").fetchall() == [("delivered",)]


_value = st.one_of(st.none(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=12), st.booleans(), st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _api_record(i: int) -> dict:
    return {"sid": f"SM{i:032x}", "account_sid": "AC" + "1" * 32, "to": "+5511961234567", "from": "+15005550006",
            "status": "delivered", "body": "Your code is QX7781", "num_segments": "1", "num_media": "0",
            "error_code": None, "price": "-0.0075", "price_unit": "USD", "direction": "outbound-api",
            "date_created": "Mon, 19 Oct 2026 10:00:00 +0000", "date_sent": "Mon, 19 Oct 2026 10:00:01 +0000",
            "date_updated": "Mon, 19 Oct 2026 10:00:09 +0000"}


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), damage=st.lists(st.tuples(st.integers(0, 29), st.sampled_from(
    ["sid", "account_sid", "status", "price", "num_segments", "error_code", "date_sent", "date_updated", "body"]),
    _value), max_size=10), not_objects=st.lists(st.integers(0, 29), max_size=3))
def test_malformed_api_records_are_rejects_with_reasons(n, damage, not_objects):
    from switchboard.ingest.twilio_api import MESSAGES, upsert_records

    records: list = [_api_record(i) for i in range(n)]
    for i, field, value in damage:
        if i < n:
            records[i][field] = value
    for i in not_objects:
        if i < n:
            records[i] = [1, 2] if i % 2 else "not an object"
    con = fresh()
    con.execute("BEGIN")
    good, bad, _top = upsert_records(con, MESSAGES, records, run_id=1, source="api", location="page-1",
                                     reject_source="twilio-messages")
    con.execute("COMMIT")
    assert good + len(bad) == n
    stored = con.execute("SELECT count(*) FROM twilio_messages").fetchone()[0]
    assert stored == good  # sids are distinct here
    rejects = con.execute("SELECT line, reason, raw FROM rejects").fetchall()
    assert sorted(r[0] for r in rejects) == sorted(bad)
    assert all(r[1] for r in rejects)
    assert all("QX7781" not in (r[2] or "") for r in rejects)  # bodies never stored, not even in rejects


def test_an_equally_new_bulk_export_row_does_not_relabel_an_api_row():
    from switchboard.ingest.twilio_api import MESSAGES, upsert_records

    con = fresh()
    rec = _api_record(1)
    con.execute("BEGIN")
    upsert_records(con, MESSAGES, [rec], run_id=1, source="api", location="p", reject_source="t")
    upsert_records(con, MESSAGES, [{**rec, "date_updated": "2026-10-19T10:00:09Z"}], run_id=2,
                   source="bulk_export", location="f", reject_source="t")
    upsert_records(con, MESSAGES, [{**rec, "price": "-0.0080"}], run_id=3, source="api", location="p",
                   reject_source="t")
    con.execute("COMMIT")
    assert con.execute("SELECT source, price::DOUBLE, ingest_run_id FROM twilio_messages").fetchall() == [
        ("api", -0.008, 3)]
