"""Reliability: bad input (issue 8). Whatever arrives, every record is loaded or in
``rejects`` with a reason, nothing crashes and nothing is silently dropped.

* Send logs, property-based (hypothesis), in all three formats (JSONL, CSV, Parquet):
  rows whose fields are replaced by wrong types, bad dates, unknown channels, invalid
  countries, huge values, control characters and odd Unicode. ``read`` equals the rows
  written, ``loaded + rejected == read``, every reject has a reason, every untouched row
  is loaded, and the table holds exactly the loaded rows.
* Files damaged as a whole: wrong encodings (Latin-1, UTF-16, a BOM, NUL bytes),
  truncated JSONL/CSV/Parquet/gzip, empty files. The run never raises; each file's
  records are accounted for, or the file itself is a reject or a failed source naming it.
* Malformed API records, property-based: records with missing sids, wrong types, bad
  dates, invalid prices and numbers, non-objects, huge bodies go through the same
  validation the SDK pages use (``ingest.twilio_api.upsert_records``), and a page of
  them travels end to end through the real twilio SDK (a fake HTTP transport serves it)
  into ``run_ingest``.

The ingest owner's ``tests/test_ingest_files.py`` covers junk JSONL lines with hypothesis
and a corrupt Parquet file; this file widens the inputs.
"""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchboard.core.settings import Settings
from switchboard.ingest import runs, send_logs, warehouse
from switchboard.ingest.pipeline import run_ingest

COLUMNS = list(send_logs.SEND_COLUMNS)


def good_row(i: int) -> dict[str, Any]:
    return {"event_id": f"ev-{i:05d}", "sent_at": "2026-10-20T10:00:00Z", "channel": "sms",
            "purpose": "password_reset", "template_id": "pr_standard", "experiment_id": None, "variant": None,
            "campaign_id": None, "user_id": f"user-{i}", "country": "BR", "locale": "pt-BR",
            "provider_sid": f"SM{i:032x}", "fallback_of": None, "error_code": None}


def fresh() -> duckdb.DuckDBPyConnection:
    con = warehouse.connect(":memory:")
    warehouse.ensure_schema(con)
    return con


def load(con: duckdb.DuckDBPyConnection, pattern: str) -> runs.SourceResult:
    result = runs.SourceResult("send-logs")
    run_id = runs.start_run(con, "send-logs")
    return send_logs.ingest_send_logs(con, [pattern], run_id, result)


# --------------------------------------------------------------------------- hypothesis: malformed rows

HUGE = "x" * 200_000
_weird_text = st.sampled_from([
    "", " ", "\t", "null", "None", "NaN", "0", "-1", "1e400", "ﬁ", "😀" * 50, "\u202e", "a\u0000b", "line\nbreak",
    'quote"inside', "comma,inside", "\\", "'; DROP TABLE send_log; --", HUGE,
])
_bad_dates = st.sampled_from([
    "yesterday", "2026-13-45T10:00:00Z", "2026-02-30", "20261020", "1700000000", "10/20/2026", "2026-10-20T25:61:00Z",
    "Mon, 19 Oct 2026 10:00:00 +0000x", "0000-00-00", "9999999-01-01", "",
])
_any_value = st.one_of(
    st.none(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    _weird_text, st.text(max_size=30),
)
MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.sampled_from([None, "", "   ", [1], {"a": 1}]),
    "user_id": st.one_of(st.sampled_from([None, "", [1, 2], {"id": 1}]), st.integers(0, 10)),
    "sent_at": st.one_of(_bad_dates, st.integers(), st.floats(allow_nan=True), st.none()),
    "channel": st.one_of(st.sampled_from(["SMS", "pigeon", "sms ", "fax", "", "Voice", "whatsapp", HUGE]),
                         st.integers(), st.none()),
    "country": st.one_of(st.sampled_from(["BRA", "1", "B", "", "ZZZ", "b r", "🇧🇷"]), st.integers()),
    "purpose": _any_value, "template_id": _any_value, "experiment_id": _any_value, "variant": _any_value,
    "campaign_id": _any_value, "locale": _any_value,
    "provider_sid": st.one_of(_weird_text, st.integers(), st.lists(st.integers(), max_size=2)),
    "fallback_of": st.one_of(_weird_text, st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)),
    "error_code": _any_value,
}
_mutation = st.sampled_from(sorted(MUTATIONS)).flatmap(lambda col: st.tuples(st.just(col), MUTATIONS[col]))
_rows = st.lists(st.lists(_mutation, max_size=3), min_size=1, max_size=25)


def _as_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def write_rows(path: Path, rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(COLUMNS)
            for r in rows:
                w.writerow(["" if r[c] is None else _as_text(r[c]) for c in COLUMNS])
    else:  # Parquet columns have one type: mutated values travel as text
        frame = pd.DataFrame({c: pd.array([_as_text(r[c]) for r in rows], dtype="string") for c in COLUMNS})
        frame.to_parquet(path, index=False)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutations=_rows)
def test_malformed_send_log_rows_are_loaded_or_rejected_with_a_reason(tmp_path_factory, fmt, mutations) -> None:
    rows, untouched = [], []
    for i, muts in enumerate(mutations):
        row = good_row(i)
        for col, value in muts:
            row[col] = value
        rows.append(row)
        if not muts:
            untouched.append(row["event_id"])
    path = tmp_path_factory.mktemp(fmt) / f"sends-h.{fmt}"
    write_rows(path, rows, fmt)
    con = fresh()
    result = load(con, str(path))
    assert result.read == len(rows), "every row written must be read (nothing silently dropped)"
    assert result.loaded + result.rejected == result.read
    assert con.execute("SELECT count(*) FROM rejects WHERE reason IS NULL OR trim(reason) = ''").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM rejects").fetchone()[0] == result.rejected
    stored = {r[0] for r in con.execute("SELECT event_id FROM send_log").fetchall()}
    assert set(untouched) <= stored, "a well-formed row was not loaded"
    assert con.execute("SELECT count(*) FROM send_log").fetchone()[0] == result.loaded
    # nothing half-typed got in: what is stored satisfies the documented schema
    bad = con.execute("""SELECT count(*) FROM send_log WHERE sent_at IS NULL OR user_id IS NULL OR trim(user_id) = ''
                         OR channel NOT IN ('sms', 'voice', 'push', 'email')""").fetchone()[0]
    assert bad == 0


# --------------------------------------------------------------------------- damaged files


def _jsonl_bytes(n: int, start: int = 0) -> bytes:
    return "".join(json.dumps(good_row(i), ensure_ascii=False) + "\n" for i in range(start, start + n)).encode()


def _damaged_files(tmp: Path) -> dict[str, tuple[Path, int]]:
    """name -> (file, records in it that could be read: lines with content)."""
    out: dict[str, tuple[Path, int]] = {}
    tmp.mkdir(parents=True, exist_ok=True)

    def put(name: str, data: bytes, records: int) -> None:
        p = tmp / name
        p.write_bytes(data)
        out[name] = (p, records)

    latin = json.dumps({**good_row(900), "purpose": "réinitialisation"}, ensure_ascii=False).encode("latin-1")
    put("sends-latin1.jsonl", _jsonl_bytes(3, 100) + latin + b"\n" + _jsonl_bytes(2, 110), 6)
    put("sends-bom.jsonl", b"\xef\xbb\xbf" + _jsonl_bytes(4, 200), 4)
    put("sends-utf16.jsonl", _jsonl_bytes(3, 300).decode().encode("utf-16"), 3)
    put("sends-nul.jsonl", _jsonl_bytes(2, 400) + b'{"event_id": "ev-nul", "sent_at": "2026-10-20T10:00:00Z",'
        b' "channel": "s\x00ms", "user_id": "u"}\n' + _jsonl_bytes(1, 410), 4)
    put("sends-truncated.jsonl", _jsonl_bytes(5, 500)[:-37], 5)
    put("sends-empty.jsonl", b"", 0)
    put("sends-blank.jsonl", b"\n\n   \n", 0)
    def csv_text(first: int, **over: str) -> str:
        return pd.DataFrame([{**good_row(i), **over} for i in range(first, first + 40)]).to_csv(index=False)

    text = csv_text(600)
    put("sends-truncated.csv", text[: len(text) - 25].encode(), 40)
    put("sends-latin1.csv", csv_text(640, purpose="réinitialisation").encode("latin-1"), 40)
    ragged = csv_text(680).splitlines()
    put("sends-ragged.csv", (ragged[0] + "\n" + "\n".join(
        line + (",extra" if k % 3 == 0 else "") for k, line in enumerate(ragged[1:])) + "\n").encode(), 40)
    pq = tmp / "whole.parquet"
    pd.DataFrame([good_row(i) for i in range(700, 800)]).to_parquet(pq, index=False)
    raw = pq.read_bytes()
    put("sends-truncated.parquet", raw[: len(raw) // 2], 100)
    put("sends-notparquet.parquet", b"PAR1" + b"\x00" * 100, 0)
    pq.unlink()
    return out


def test_damaged_send_log_files_never_crash_and_nothing_vanishes(tmp_path: Path) -> None:
    files = _damaged_files(tmp_path / "in")
    report = run_ingest(Settings(data_dir=tmp_path / "wh"), sources="send-logs",
                        send_logs=[str(tmp_path / "in" / "sends-*")], progress=False)
    result = report.result("send-logs")
    assert result.loaded + result.rejected == result.read
    con = duckdb.connect(str(tmp_path / "wh" / "warehouse.duckdb"), read_only=True)
    try:
        per_file = {Path(p).name: n for p, n in con.execute(
            "SELECT source_file, count(*) FROM send_log GROUP BY 1").fetchall()}
        rejects = {}
        for loc, n, reasons in con.execute(
                "SELECT location, count(*), list(DISTINCT reason) FROM rejects GROUP BY 1").fetchall():
            rejects[Path(loc).name] = (n, reasons)
        assert con.execute("SELECT count(*) FROM rejects WHERE reason IS NULL OR reason = ''").fetchone()[0] == 0
    finally:
        con.close()
    failed_text = (result.error or "") + " " + (result.detail or "")
    for name, (_, records) in files.items():
        loaded = per_file.get(name, 0)
        rejected = rejects.get(name, (0, []))[0]
        if records == 0:
            continue
        reasons = rejects.get(name, (0, []))[1]
        whole_file_reported = any(str(r).startswith("unreadable") for r in reasons) or name in failed_text
        assert loaded + rejected >= records or whole_file_reported, (
            f"{name}: {records} records in, {loaded} loaded and {rejected} rejected: some vanished silently")
        assert loaded + rejected > 0 or name in failed_text, f"{name}: neither loaded, rejected nor reported"


def test_truncated_bulk_export_gzip_is_reported_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "bulk" / "Messages"
    folder.mkdir(parents=True)
    recs = [{"sid": f"SM{i:032x}", "account_sid": "AC" + "1" * 32, "to": "+5511987654321", "from": "+15005550006",
             "status": "delivered", "body": "hi", "num_segments": 1, "price": -0.05, "price_unit": "USD",
             "date_created": "2026-10-20T10:00:00Z", "date_sent": "2026-10-20T10:00:00Z",
             "date_updated": "2026-10-20T10:00:05Z"} for i in range(200)]
    good = gzip.compress("".join(json.dumps(r) + "\n" for r in recs[:100]).encode())
    (folder / "2026-10-20.json.gz").write_bytes(good)
    cut = gzip.compress("".join(json.dumps(r) + "\n" for r in recs[100:]).encode())
    (folder / "2026-10-21.json.gz").write_bytes(cut[: len(cut) // 2])
    (folder / "2026-10-22.json.gz").write_bytes(b"not gzip at all")
    report = run_ingest(Settings(data_dir=tmp_path / "wh"), sources="bulk-export", bulk_export_dir=tmp_path / "bulk",
                        progress=False)
    r = report.result("bulk-export")
    assert r.loaded + r.rejected == r.read
    assert r.loaded >= 100  # the intact file is in whatever happens to the others
    text = (r.error or "") + (r.detail or "")
    con = duckdb.connect(str(tmp_path / "wh" / "warehouse.duckdb"), read_only=True)
    try:
        locations = {Path(x[0]).name for x in con.execute("SELECT location FROM rejects").fetchall()}
    finally:
        con.close()
    for name in ("2026-10-21.json.gz", "2026-10-22.json.gz"):
        assert name in locations or name in text or r.status == "failed", f"{name} was damaged and nobody said so"


# --------------------------------------------------------------------------- malformed API records

_api_value = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.text(max_size=20),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(["", "abc", "-0.05x", "Mon, 99 Foo 2026 10:00:00 +0000", "2026-10-20T10:00:00Z", HUGE[:50_000],
                     "+999", "+1", "not-a-number", "+5511987654321"]),
)
API_FIELDS = ["sid", "account_sid", "to", "from", "status", "error_code", "num_segments", "num_media", "price",
              "price_unit", "date_created", "date_sent", "date_updated", "body", "direction", "messaging_service_sid"]


def good_message(i: int) -> dict[str, Any]:
    return {"sid": f"SM{i:032x}", "account_sid": "AC" + "a" * 32, "to": "+5511987654321", "from": "+15005550006",
            "status": "delivered", "error_code": None, "num_segments": "1", "num_media": "0", "price": "-0.05000",
            "price_unit": "USD", "date_created": "Tue, 20 Oct 2026 10:00:00 +0000",
            "date_sent": "Tue, 20 Oct 2026 10:00:00 +0000", "date_updated": "Tue, 20 Oct 2026 10:00:05 +0000",
            "body": "Your code is 123456", "direction": "outbound-api", "messaging_service_sid": None}


_api_mutation = st.tuples(st.sampled_from(API_FIELDS), _api_value)
_api_records = st.lists(
    st.one_of(st.tuples(st.just("record"), st.lists(_api_mutation, max_size=3)),
              st.tuples(st.just("raw"), st.sampled_from(["not an object", 42, None, ["a", "list"]]))),
    min_size=1, max_size=30,
)


def _build_records(spec: list[Any]) -> tuple[list[Any], list[str]]:
    records, untouched = [], []
    for i, (kind, item) in enumerate(spec):
        if kind == "record":
            rec = good_message(i)
            for k, v in item:
                rec[k] = v
            records.append(rec)
            if not item:
                untouched.append(rec["sid"])
        else:
            records.append(item)
    return records, untouched


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=_api_records)
def test_malformed_api_records_are_loaded_or_rejected_with_a_reason(spec) -> None:
    from switchboard.ingest.twilio_api import MESSAGES, _text, upsert_records

    records, untouched = _build_records(spec)
    con = fresh()
    con.execute("BEGIN")
    loaded, rejected_idx, _ = upsert_records(con, MESSAGES, records, run_id=1, source="api",
                                             location="/2010-04-01/Accounts/AC/Messages.json?Page=0",
                                             reject_source="twilio")
    con.execute("COMMIT")
    assert loaded + len(rejected_idx) == len(records)
    assert len(set(rejected_idx)) == len(rejected_idx)
    rejects = con.execute("SELECT line, reason, raw FROM rejects").fetchall()
    assert len(rejects) == len(rejected_idx) and all(r[1] for r in rejects)
    assert all("Your code is 123456" not in (r[2] or "") for r in rejects), "a body (one-time code) was stored"
    stored = {r[0] for r in con.execute("SELECT sid FROM twilio_messages").fetchall()}
    assert set(untouched) <= stored
    # every record that was loaded is in the table under its sid (duplicates collapse to one)
    loaded_sids = {_text(records[i]["sid"]) for i in range(len(records)) if i not in set(rejected_idx)}
    assert loaded_sids == stored
    cols = {r[0] for r in con.execute("DESCRIBE twilio_messages").fetchall()}
    assert "body" not in cols


class _FakeTwilio:
    """A twilio ``HttpClient`` that serves one page of crafted message records."""

    def __init__(self, records: list[Any]) -> None:
        self.records = records

    def client(self, account_sid: str) -> Any:
        from twilio.http import HttpClient
        from twilio.http.response import Response
        from twilio.rest import Client

        records = self.records

        class Http(HttpClient):
            def __init__(self) -> None:
                import logging

                super().__init__(logging.getLogger("fake-twilio"), False)

            def request(self, method: str, url: str, params: Any = None, data: Any = None, headers: Any = None,
                        auth: Any = None, timeout: Any = None, allow_redirects: bool = False) -> Response:
                meta = {"first_page_uri": url, "next_page_uri": None, "previous_page_uri": None, "page": 0,
                        "page_size": 1000, "uri": url, "start": 0, "end": 0}
                if url.endswith("/Accounts.json"):
                    body = {**meta, "accounts": [{"sid": account_sid, "status": "active",
                                                  "friendly_name": "fake", "owner_account_sid": account_sid}]}
                elif url.endswith("/Messages.json"):
                    body = {**meta, "messages": records}
                elif url.endswith("/Calls.json"):
                    body = {**meta, "calls": []}
                else:
                    return Response(404, json.dumps({"code": 20404, "message": "not found", "status": 404}))
                return Response(200, json.dumps(body))

        c = Client(account_sid, "fake-token", http_client=Http())
        c.api.base_url = "http://fake.invalid"
        return c


def test_a_malformed_api_page_goes_end_to_end_through_the_sdk(tmp_path: Path) -> None:
    account = "AC" + "a" * 32
    records: list[Any] = [good_message(i) for i in range(10)]
    records += [
        {**good_message(100), "sid": None},
        {**good_message(101), "date_sent": "someday"},
        {**good_message(102), "price": "free"},
        {**good_message(103), "num_segments": {"n": 1}},
        {**good_message(104), "to": "+999"},  # an invalid number is kept (country unknown), not dropped
        {**good_message(105), "status": ["delivered"]},
        {**good_message(106), "body": HUGE},
        "garbage",
        12,
    ]
    fake = _FakeTwilio(records)
    report = run_ingest(Settings(data_dir=tmp_path), sources="twilio", progress=False,
                        client_factory=lambda: fake.client(account), since=datetime(2026, 10, 1, tzinfo=UTC))
    r = report.result("twilio")
    assert r.status == "ok", r.error
    assert r.read == len(records)
    assert r.loaded + r.rejected == r.read
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        reasons = [x[0] for x in con.execute("SELECT reason FROM rejects ORDER BY line").fetchall()]
        n_msgs = con.execute("SELECT count(*) FROM twilio_messages").fetchone()[0]
        country = con.execute("SELECT to_country FROM twilio_messages WHERE sid = ?",
                              [good_message(104)["sid"]]).fetchall()
    finally:
        con.close()
    assert len(reasons) == r.rejected and all(reasons)
    assert n_msgs == r.loaded
    assert country in ([(None,)], []) or country[0][0] is None or len(country[0][0]) == 2
