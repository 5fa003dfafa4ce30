"""Issue 13, ingest: one bad row never costs good rows, and the counts add up.

Each test is about a class of input, generated with hypothesis where the input is the point:
* JSONL: invalid UTF-8, over-long lines, junk and blank lines among good ones: every non-blank
  line is loaded or rejected with its line number (it used to cost the whole file);
* CSV: too few or too many fields, stray quotes, invalid UTF-8: ONE reject per bad record (it
  used to be 3-11, or the whole file), read = loaded + rejected = records in the file;
* plausibility bounds: a timestamp outside 2000-01-01 .. now + 1 day, an infinite or absurd
  number, parses but is rejected with a reason naming the bound;
* a file that cannot be read at all fails the source, with counts that add up in ``ingest_runs``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchboard.core.settings import Settings
from switchboard.ingest import lines, runs, send_logs, warehouse
from switchboard.ingest.pipeline import run_ingest
from switchboard.ingest.twilio_api import CALLS, MESSAGES, upsert_records

HYP = settings(max_examples=25, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def fresh() -> duckdb.DuckDBPyConnection:
    con = warehouse.connect(":memory:")
    warehouse.ensure_schema(con)
    return con


def load(con: duckdb.DuckDBPyConnection, pattern: str) -> runs.SourceResult:
    result = runs.SourceResult("send-logs")
    return send_logs.ingest_send_logs(con, [pattern], runs.start_run(con, "send-logs"), result)


def send(i: int, **over: object) -> dict:
    row = {"event_id": f"e{i}", "sent_at": "2026-10-20T10:00:00Z", "channel": "sms", "user_id": f"u{i}"}
    row.update(over)
    return row


def rejects(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    return dict(con.execute("SELECT line, reason FROM rejects").fetchall())


# --------------------------------------------------------------------------- JSONL


def _jsonl_line(kind: str, i: int) -> bytes:
    good = json.dumps(send(i)).encode()
    return {
        "good": good,
        "utf8": good.replace(b'"u', b'"\xff\xfeu', 1),  # one invalid byte inside a value
        "long": json.dumps(send(i, purpose="x" * 600)).encode(),  # over the (lowered) line limit
        "junk": b"{not json at all",
        "blank": b"   ",
    }[kind]


@HYP
@given(kinds=st.lists(st.sampled_from(["good", "utf8", "long", "junk", "blank"]), min_size=1, max_size=25),
       last_newline=st.booleans())
def test_every_jsonl_line_is_loaded_or_rejected_with_its_line_number(tmp_path_factory, monkeypatch, kinds,
                                                                     last_newline):
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 400)
    path = tmp_path_factory.mktemp("jsonl") / "sends-1.jsonl"
    path.write_bytes(b"\n".join(_jsonl_line(k, i) for i, k in enumerate(kinds)) + (b"\n" if last_newline else b""))
    con = fresh()
    result = load(con, str(path))
    good = {f"e{i}" for i, k in enumerate(kinds) if k == "good"}
    bad_lines = {i + 1: k for i, k in enumerate(kinds) if k not in ("good", "blank")}
    assert {r[0] for r in con.execute("SELECT event_id FROM send_log").fetchall()} == good
    got = rejects(con)
    assert set(got) == set(bad_lines)
    for line, kind in bad_lines.items():
        expected = {"utf8": "invalid UTF-8", "long": "line longer than", "junk": "malformed JSON"}[kind]
        assert got[line].startswith(expected), (line, got[line])
    assert result.read == result.loaded + result.rejected == len(good) + len(bad_lines)
    assert result.status == "ok"


# --------------------------------------------------------------------------- CSV

HEADER = "event_id,sent_at,channel,user_id"


def _csv_line(kind: str, i: int) -> bytes:
    return {
        "good": f"e{i},2026-10-20T10:00:00Z,sms,u{i}".encode(),
        "few": f"e{i},2026-10-20T10:00:00Z,sms".encode(),
        "many": f"e{i},2026-10-20T10:00:00Z,sms,u{i},extra,more".encode(),
        "quote": f'e{i},"2026-10-20"T10:00:00Z,sms,u{i}'.encode(),  # a quote closed mid-field
        "utf8": f"e{i},2026-10-20T10:00:00Z,sms,u".encode() + b"\xff" + str(i).encode(),
        "quoted": f'e{i},2026-10-20T10:00:00Z,"sms",u{i}'.encode(),  # well-formed quoting loads
        "blank": b"",
    }[kind]


@HYP
@given(kinds=st.lists(st.sampled_from(["good", "few", "many", "quote", "utf8", "quoted", "blank"]), min_size=1,
                      max_size=25))
def test_every_csv_record_is_loaded_or_one_reject(tmp_path_factory, kinds):
    path = tmp_path_factory.mktemp("csv") / "sends-1.csv"
    path.write_bytes(HEADER.encode() + b"\n" + b"\n".join(_csv_line(k, i) for i, k in enumerate(kinds)) + b"\n")
    con = fresh()
    result = load(con, str(path))
    good = {f"e{i}" for i, k in enumerate(kinds) if k in ("good", "quoted")}
    bad_lines = {i + 2: k for i, k in enumerate(kinds) if k in ("few", "many", "quote", "utf8")}  # header: line 1
    assert {r[0] for r in con.execute("SELECT event_id FROM send_log").fetchall()} == good
    got = rejects(con)
    assert set(got) == set(bad_lines), "one reject per bad record, at its line"
    assert all(got[n].startswith("invalid UTF-8") for n, k in bad_lines.items() if k == "utf8")
    assert all(got[n].startswith("malformed CSV record") for n, k in bad_lines.items() if k != "utf8")
    assert result.read == result.loaded + result.rejected == len(good) + len(bad_lines)


def test_an_unclosed_csv_quote_costs_its_line_only_and_quoted_newlines_still_load(tmp_path):
    path = tmp_path / "sends-1.csv"
    path.write_text(f'{HEADER},purpose\n'
                    'e1,2026-10-20T10:00:00Z,sms,u1,"two\nlines"\n'   # a legitimate quoted newline
                    'e2,2026-10-20T10:00:00Z,sms,u2,"never closed\n'
                    'e3,2026-10-20T10:00:00Z,sms,u3,fine\n'
                    'e4,2026-10-20T10:00:00Z,sms,u4,fine\n')
    con = fresh()
    result = load(con, str(path))
    assert dict(con.execute("SELECT event_id, purpose FROM send_log").fetchall()) == {
        "e1": "two\nlines", "e3": "fine", "e4": "fine"}
    assert list(rejects(con)) == [4]
    assert (result.read, result.loaded, result.rejected) == (4, 3, 1)


# --------------------------------------------------------------------------- plausibility bounds

_NOW = datetime.now(UTC)


def _plausible(ts: datetime) -> bool:
    return datetime(2000, 1, 1, tzinfo=UTC) <= ts <= _NOW + timedelta(days=1)


_times = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)).filter(
    lambda t: abs(t - (_NOW + timedelta(days=1))) > timedelta(hours=1))  # not at the moving edge


@HYP
@given(stamps=st.lists(_times, min_size=1, max_size=12), fmt=st.sampled_from(["jsonl", "csv", "parquet"]))
def test_timestamps_outside_the_plausible_range_are_rejects_with_the_bound(tmp_path_factory, stamps, fmt):
    rows = [send(i, sent_at=t.isoformat()) for i, t in enumerate(stamps)]
    rows += [send(100, sent_at="20261-11-15T10:00:00Z"), send(101, sent_at="infinity"),
             send(102, sent_at="-infinity")]
    path = tmp_path_factory.mktemp("ts") / f"sends-1.{fmt}"
    frame = pd.DataFrame(rows)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    con = fresh()
    result = load(con, str(path))
    expected = {f"e{i}" for i, t in enumerate(stamps) if _plausible(t)}
    assert {r[0] for r in con.execute("SELECT event_id FROM send_log").fetchall()} == expected
    reasons = [r[0] for r in con.execute("SELECT reason FROM rejects").fetchall()]
    assert len(reasons) == len(rows) - len(expected) == result.rejected
    assert all("sent_at outside the plausible range (between 2000-01-01 and now + 1 day)" in r for r in reasons)
    lo, hi = con.execute("SELECT min(sent_at), max(sent_at) FROM send_log").fetchone()
    assert lo is None or datetime(2000, 1, 1, tzinfo=UTC) <= lo <= hi <= _NOW + timedelta(days=1, minutes=5)


def test_conversion_times_are_bounded_too(tmp_path):
    path = tmp_path / "conversions-1.jsonl"
    path.write_text("\n".join(json.dumps({"event_id": f"c{i}", "user_id": "u", "conversion_type": "x",
                                          "occurred_at": t}) for i, t in enumerate(
        ["2026-10-20T10:00:00Z", "1970-01-01T00:00:00Z", "20261-01-01T00:00:00Z"])) + "\n")
    con = fresh()
    result = load(con, str(path))
    assert (result.loaded, result.rejected) == (1, 2)
    assert all("occurred_at outside the plausible range" in r for r in rejects(con).values())


_API_ABSURD = [
    (MESSAGES, {"date_sent": "20261-11-15T10:00:00Z"}, "date_sent outside the plausible range"),
    (MESSAGES, {"date_updated": "1999-12-31T23:00:00Z"}, "date_updated outside the plausible range"),
    (MESSAGES, {"num_segments": "-3"}, "num_segments outside the plausible range"),
    (MESSAGES, {"num_segments": "1e9"}, "num_segments outside the plausible range"),
    (MESSAGES, {"num_segments": "1e12"}, "bad num_segments"),  # beyond INTEGER: does not even parse
    (MESSAGES, {"price": "-99999"}, "price outside the plausible range"),
    (MESSAGES, {"price": "NaN"}, "bad price"),
    (CALLS, {"duration": "inf"}, "bad duration"),
    (CALLS, {"duration": "-5"}, "duration outside the plausible range"),
    (CALLS, {"duration": "999999"}, "duration outside the plausible range"),
    (CALLS, {"start_time": "infinity"}, "start_time outside the plausible range"),
]


@pytest.mark.parametrize(("res", "change", "reason"), _API_ABSURD, ids=[c[2] for c in _API_ABSURD])
def test_api_records_with_absurd_values_are_rejects(res, change, reason):
    base = {"sid": "SM" + "0" * 32, "account_sid": "AC" + "1" * 32, "status": "delivered", "to": "+5511987654321",
            "price": "-0.05", "price_unit": "USD", "date_created": "2026-10-20T10:00:00Z",
            "date_updated": "2026-10-20T10:00:05Z", "date_sent": "2026-10-20T10:00:00Z", "num_segments": "1",
            "duration": "30", "start_time": "2026-10-20T10:00:00Z"}
    good, bad = dict(base), {**base, "sid": "SM" + "1" * 32, **change}
    con = fresh()
    con.execute("BEGIN")
    loaded, rejected, _ = upsert_records(con, res, [good, bad], run_id=1, source="api", location="p",
                                         reject_source="t")
    con.execute("COMMIT")
    assert (loaded, rejected) == (1, [1])
    assert con.execute("SELECT reason FROM rejects").fetchone()[0].startswith(reason)


# --------------------------------------------------------------------------- unreadable files


def test_an_unreadable_file_fails_the_run_with_counts_that_add_up(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "sends-1.jsonl").write_text("".join(json.dumps(send(i)) + "\n" for i in range(5)))
    (logs / "sends-2.parquet").write_bytes(b"PAR1 not really")
    report = run_ingest(Settings(data_dir=tmp_path / "wh"), sources="send-logs", send_logs=[str(logs / "sends-*")],
                        progress=False)
    assert not report.ok
    r = report.result("send-logs")
    assert (r.status, r.read, r.loaded, r.rejected) == ("failed", 6, 5, 1)
    assert "sends-2.parquet" in r.error
    con = duckdb.connect(str(tmp_path / "wh" / "warehouse.duckdb"), read_only=True)
    try:
        row = con.execute("SELECT status, rows_read, rows_loaded, rows_rejected, run_id FROM ingest_runs").fetchone()
        assert row[:4] == ("failed", 6, 5, 1)
        assert con.execute("SELECT count(*) FROM rejects WHERE run_id = ?", [row[4]]).fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM send_log").fetchone()[0] == 5
    finally:
        con.close()


# --------------------------------------------------------------------------- BulkExport day files


def _bulk_record(i: int) -> dict:
    return {"sid": f"SM{i:032x}", "account_sid": "AC" + "1" * 32, "to": "+5511987654321", "from": "+15005550006",
            "status": "delivered", "body": "your code is 123456", "num_segments": 1, "price": -0.05,
            "price_unit": "USD", "date_created": "2026-10-20T10:00:00Z", "date_sent": "2026-10-20T10:00:00Z",
            "date_updated": "2026-10-20T10:00:05Z"}


@HYP
@given(kinds=st.lists(st.sampled_from(["good", "utf8", "long", "junk", "blank"]), min_size=1, max_size=15))
def test_every_bulk_export_line_is_loaded_or_rejected_with_its_line_number(tmp_path_factory, monkeypatch, kinds):
    import gzip

    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 600)
    folder = tmp_path_factory.mktemp("bulk") / "Messages"
    folder.mkdir()
    body = []
    for i, k in enumerate(kinds):
        good = json.dumps(_bulk_record(i)).encode()
        body.append({"good": good, "utf8": good.replace(b"your", b"y\xffour"), "junk": b'{"sid": "SMcut", "body": "your code is 123456", "to',
                     "long": json.dumps({**_bulk_record(i), "body": "x" * 700}).encode(), "blank": b""}[k])
    (folder / "2026-10-20.json.gz").write_bytes(gzip.compress(b"\n".join(body) + b"\n"))
    con = fresh()
    from switchboard.ingest.bulk_export import ingest_bulk_export

    result = ingest_bulk_export(con, folder.parent, runs.start_run(con, "bulk-export"), runs.SourceResult("bulk-export"))
    good = {f"SM{i:032x}" for i, k in enumerate(kinds) if k == "good"}
    assert {r[0] for r in con.execute("SELECT sid FROM twilio_messages").fetchall()} == good
    assert set(rejects(con)) == {i + 1 for i, k in enumerate(kinds) if k in ("utf8", "long", "junk")}
    assert result.read == result.loaded + result.rejected and result.status == "ok"
    assert con.execute("SELECT count(*) FROM rejects WHERE raw LIKE '%123456%'").fetchone()[0] == 0  # no bodies
