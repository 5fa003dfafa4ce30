"""The batched send-log load (one streaming insert per batch of files, earlier versions replaced
through the batch's own rows): loading files over several runs gives the same table as loading
the final set at once, whatever the order of runs, duplicates, rejects and rewritten files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from switchboard.ingest import runs, send_logs, warehouse
from tests.test_ingest_files import good_send


def _write(path: Path, rows: list[dict]) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pd.DataFrame(rows).astype("string").to_parquet(path, index=False)


def _load(con, pattern: str) -> runs.SourceResult:
    result = runs.SourceResult("send-logs")
    return send_logs.ingest_send_logs(con, [pattern], runs.start_run(con, "send-logs"), result)


def _fresh():
    con = warehouse.connect(":memory:")
    warehouse.ensure_schema(con)
    return con


def _state(con) -> tuple:
    return (
        con.execute("SELECT event_id, purpose, user_id, source_file FROM send_log ORDER BY event_id").fetchall(),
        con.execute("SELECT location, line, reason FROM rejects ORDER BY location, line").fetchall(),
        con.execute("SELECT path, rows_loaded FROM ingest_files ORDER BY path").fetchall(),
    )


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_runs_of_batches_equal_one_load_of_the_final_files(tmp_path, fmt):
    d = tmp_path / "logs"
    d.mkdir()
    pattern = str(d / f"sends-*.{fmt}")
    con = _fresh()
    _write(d / f"sends-1.{fmt}", [good_send(i, purpose="v1") for i in range(6)])
    _write(d / f"sends-2.{fmt}", [good_send(i, purpose="v1") for i in range(6, 10)])
    first = _load(con, pattern)
    assert (first.read, first.loaded, first.rejected) == (10, 10, 0)

    # run 2: a new file redefines e1 and e7 (from both earlier files), has e20 twice (the later
    # line wins) and a bad row; sends-1 is rewritten with one row more and e0 changed
    _write(d / f"sends-3.{fmt}", [good_send(1, purpose="v2"), good_send(7, purpose="v2"),
                                  good_send(20, purpose="first"), good_send(21, channel="fax"),
                                  good_send(20, purpose="last")])
    _write(d / f"sends-1.{fmt}", [good_send(0, purpose="v3")] + [good_send(i, purpose="v1") for i in range(1, 7)])
    second = _load(con, pattern)
    assert (second.read, second.loaded, second.rejected) == (12, 11, 1)
    stored = dict(con.execute("SELECT event_id, purpose FROM send_log").fetchall())
    assert con.execute("SELECT count(*) FROM send_log").fetchone()[0] == len(stored) == 11  # e0..e9, e20
    assert stored["e0"] == "v3" and stored["e20"] == "last" and stored["e6"] == "v1"
    # sends-1 (rewritten) sorts before sends-3, so its e1 is replaced by sends-3's within the batch
    assert stored["e1"] == "v2" and stored["e7"] == "v2"
    rejects = con.execute("SELECT location, line, reason FROM rejects").fetchall()
    assert rejects == [(str(d / f"sends-3.{fmt}"), 4, "unknown channel: fax")]

    once = _fresh()
    _load(once, pattern)
    # same rows (source_file may differ: e6 is in sends-1 and sends-2, and the file loaded last wins)
    assert [r[:3] for r in _state(con)[0]] == [r[:3] for r in _state(once)[0]]
    assert _state(con)[1:] == _state(once)[1:]


def test_a_jsonl_blank_line_in_a_batch_is_not_a_record(tmp_path):
    (tmp_path / "sends-1.jsonl").write_text(json.dumps(good_send(1)) + "\n\n   \n" + json.dumps(good_send(2)))
    _write(tmp_path / "sends-2.jsonl", [good_send(3)])
    con = _fresh()
    r = _load(con, str(tmp_path / "sends-*"))
    assert (r.read, r.loaded, r.rejected) == (3, 3, 0)
    assert dict(con.execute("SELECT path, rows_loaded FROM ingest_files").fetchall()) == {
        str(tmp_path / "sends-1.jsonl"): 2, str(tmp_path / "sends-2.jsonl"): 1}


def test_count_lines(tmp_path):
    for text, n in [("", 0), ("a", 1), ("a\n", 1), ("a\nb", 2), ("\n\n", 2), ("a\r\nb\r\n", 2)]:
        (tmp_path / "f").write_text(text, newline="")
        assert send_logs._count_lines(str(tmp_path / "f")) == n, repr(text)
