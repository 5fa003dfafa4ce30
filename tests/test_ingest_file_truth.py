"""Issue 13, ingest: a send-log file is the source of truth for its rows; globs never loop; killed runs are
marked; bad arguments are one line and exit 2.

* a rewritten file (a row removed, an event_id corrected) leaves the warehouse equal to the file;
* ``--full-refresh`` removes the rows of files that no longer exist (a plain run keeps them);
* ``DIR/**/sends-*`` with a symlink loop (a link to ``.``) and a symlinked file: each real file once;
* a run killed mid-way (its ``ingest_runs`` row left ``running``) is marked ``interrupted`` by the next run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchboard.core.settings import Settings
from switchboard.ingest import runs, send_logs, warehouse
from switchboard.ingest.pipeline import open_ingest_db, run_ingest
from tests.test_ingest_per_row import fresh, load, send


def _write(path: Path, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows, columns=list(send(0)))  # the header/schema even when there is no row
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.astype("string").to_parquet(path, index=False)
    st_ = path.stat()  # a rewrite within the same mtime tick must still count as a change
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000 * len(rows)))


def _events(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT event_id, user_id FROM send_log").fetchall())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.sets(st.integers(0, 30), max_size=12), second=st.sets(st.integers(0, 30), max_size=12),
       other=st.sets(st.integers(31, 40), max_size=3), fmt=st.sampled_from(["jsonl", "csv", "parquet"]))
def test_a_rewritten_file_leaves_the_warehouse_equal_to_the_file(tmp_path_factory, first, second, other, fmt):
    d = tmp_path_factory.mktemp("rw")
    path, keep = d / f"sends-a.{fmt}", d / f"sends-b.{fmt}"
    con = fresh()
    _write(keep, [send(i) for i in sorted(other)])
    _write(path, [send(i, user_id="v1") for i in sorted(first)])
    load(con, str(d / "sends-*"))
    _write(path, [send(i, user_id="v2") for i in sorted(second)])  # rows removed, added, corrected
    result = load(con, str(d / "sends-*"))
    assert result.read == len(second)
    expected = {f"e{i}": "v2" for i in second} | {f"e{i}": f"u{i}" for i in other}
    assert _events(con) == expected


def test_a_corrected_event_id_replaces_the_old_one(tmp_path):
    path = tmp_path / "sends-1.jsonl"
    _write(path, [send(1), send(2), send(3)])
    con = fresh()
    load(con, str(path))
    _write(path, [send(1), send(33, user_id="u3")])  # e2 removed, e3 corrected to e33
    load(con, str(path))
    assert _events(con) == {"e1": "u1", "e33": "u3"}


def test_full_refresh_forgets_deleted_files_and_a_plain_run_keeps_them(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    _write(d / "sends-1.jsonl", [send(1), send(2)])
    _write(d / "sends-2.jsonl", [send(3), send(4, channel="fax")])
    settings_ = Settings(data_dir=tmp_path / "wh")

    def ingest(full: bool) -> runs.SourceResult:
        return run_ingest(settings_, sources="send-logs", send_logs=[str(d / "sends-*")], progress=False,
                          full_refresh=full).result("send-logs")

    ingest(False)
    (d / "sends-2.jsonl").unlink()
    assert ingest(False).deleted == 0
    con = duckdb.connect(str(tmp_path / "wh" / "warehouse.duckdb"), read_only=True)
    assert {r[0] for r in con.execute("SELECT event_id FROM send_log").fetchall()} == {"e1", "e2", "e3"}
    con.close()
    assert ingest(True).deleted == 1
    con = duckdb.connect(str(tmp_path / "wh" / "warehouse.duckdb"), read_only=True)
    try:
        assert {r[0] for r in con.execute("SELECT event_id FROM send_log").fetchall()} == {"e1", "e2"}
        assert con.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0  # its reject went with it
        assert [Path(p).name for (p,) in con.execute("SELECT path FROM ingest_files").fetchall()] == ["sends-1.jsonl"]
    finally:
        con.close()


# --------------------------------------------------------------------------- globs


def test_a_glob_through_a_symlink_loop_loads_each_real_file_once(tmp_path):
    d = tmp_path / "logs"
    (d / "sub").mkdir(parents=True)
    _write(d / "sends-1.jsonl", [send(i) for i in range(3)])
    _write(d / "sub" / "sends-2.jsonl", [send(i) for i in range(3, 5)])
    (d / "loop").symlink_to(".")  # DIR/loop/loop/loop/... is DIR
    (d / "sub" / "up").symlink_to("..")
    (d / "sends-link.jsonl").symlink_to(d / "sends-1.jsonl")  # the same file under two names
    files = send_logs.discover([str(d / "**" / "sends-*")])
    assert files == [str(d / "sends-1.jsonl"), str(d / "sub" / "sends-2.jsonl")]
    con = fresh()
    result = load(con, str(d / "**" / "sends-*"))
    assert (result.read, result.loaded) == (5, 5)


def test_the_glob_matches_what_glob_matches_without_loops(tmp_path):
    import glob

    d = tmp_path / "logs"
    for rel in ["sends-1.jsonl", "a/sends-2.csv", "a/b/sends-3.parquet", "a/conversions-1.jsonl", ".hidden/sends-9.jsonl",
                "a/.sends-h.jsonl", "a/b/notes.txt"]:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text("x")
    for pattern in ["**/sends-*", "*/sends-*", "a/**", "**/*.jsonl", "a/b/sends-3.parquet", "sends-?.jsonl",
                    "**/b/*", "nothing/**/x"]:
        full = str(d / pattern)
        files = sorted(p for p in glob.glob(full, recursive=True) if os.path.isfile(p))
        assert sorted(p for p in send_logs.walk_glob(full) if os.path.isfile(p)) == files, pattern


def test_a_glob_that_matches_nothing_is_a_warning(tmp_path):
    report = run_ingest(Settings(data_dir=tmp_path / "wh"), sources="send-logs",
                        send_logs=[str(tmp_path / "nowhere" / "sends-*")], progress=False)
    r = report.result("send-logs")
    assert report.ok and len(r.warnings) == 1 and "matched no" in r.warnings[0]
    assert "warning: --send-logs" in report.summary()


# --------------------------------------------------------------------------- killed runs


def test_a_killed_run_is_marked_interrupted_by_the_next(tmp_path):
    settings_ = Settings(data_dir=tmp_path)
    con = open_ingest_db(settings_.ingest_db_path)
    killed = runs.start_run(con, "send-logs")  # the process dies here: its row says running
    con.close()
    run_ingest(settings_, sources="send-logs", send_logs=[str(tmp_path / "none-*")], progress=False)
    con = warehouse.connect(settings_.warehouse_path, read_only=True)
    try:
        status, finished, error = con.execute(
            "SELECT status, finished_at, error FROM ingest_runs WHERE run_id = ?", [killed]).fetchone()
        assert status == "interrupted" and finished is not None and "killed" in error
        assert con.execute("SELECT count(*) FROM ingest_runs WHERE status = 'running'").fetchone()[0] == 0
    finally:
        con.close()


@pytest.mark.parametrize("name", ["sends-1.jsonl", "sends-1.csv"])
def test_a_file_of_only_bad_bytes_is_records_not_a_crash(tmp_path, name):
    (tmp_path / name).write_bytes(b"\xff\xfe\x00garbage\n\x80\x81\n")
    con = fresh()
    result = load(con, str(tmp_path / name))
    assert result.read == result.loaded + result.rejected
    assert result.rejected == con.execute("SELECT count(*) FROM rejects").fetchone()[0] >= 1


def test_an_empty_default_send_log_folder_is_no_warning(tmp_path):
    report = run_ingest(Settings(data_dir=tmp_path), sources="send-logs", progress=False)
    assert report.ok and report.result("send-logs").warnings == []
