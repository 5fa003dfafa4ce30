"""Publishing without copying the history (ingest/publish.py): a snapshot no reader holds is patched with
what changed and the link swapped; readers keep their snapshot until they reopen and never block the
writer; the published file always equals the ingest file it was published from; a kill -9 at any named
step leaves a usable snapshot, and the next run converges."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from switchboard.ingest import incremental, publish, warehouse
from tests.incremental_util import D0, Writer, differences, open_warehouse, relations


@pytest.fixture
def setup(tmp_path: Path):
    ingest = tmp_path / "ingest.duckdb"
    wh = tmp_path / "warehouse.duckdb"
    con = open_warehouse(ingest)
    yield con, ingest, wh
    con.close()


def _run(w: Writer, k: int) -> None:
    """One run of new traffic: k messages with sends (an experiment), a status change of an older one."""
    w.start()
    base = w.con.execute("SELECT count(*) FROM twilio_messages").fetchall()[0][0]
    for i in range(base, base + k):
        at = D0 + timedelta(minutes=7 * i)
        w.message(f"SM{i:04d}", at)
        w.send(f"e{i}", at, f"u{i % 5}", sid=f"SM{i:04d}", experiment="x1", variant="AB"[i % 2])
    if base:
        w.message("SM0000", D0, status="delivered", price=0.05, updated=D0 + timedelta(minutes=base))
    w.finish()


def _publish(con, ingest, wh) -> publish.PublishReport:
    incremental.refresh(con)
    return publish.publish(con, ingest, wh)


def _equal_to_ingest(con: duckdb.DuckDBPyConnection, wh: Path) -> dict[str, int]:
    con.execute(f"ATTACH '{wh}' AS _w (READ_ONLY)")
    try:
        main = con.execute("SELECT current_database()").fetchall()[0][0]
        assert relations(con, main) == relations(con, "_w")
        return differences(con, main, "_w", relations(con, main) - publish.WRITER_ONLY)
    finally:
        con.execute("DETACH _w")


def _reader_count(path: Path) -> int:
    c = duckdb.connect(str(path), read_only=True)
    try:
        return int(c.execute("SELECT count(*) FROM message_facts").fetchall()[0][0])
    finally:
        c.close()


def test_runs_patch_a_free_snapshot_and_the_published_file_equals_the_ingest_file(setup) -> None:
    con, ingest, wh = setup
    w = Writer(con)
    modes = []
    for k in (5, 3, 0, 4):
        _run(w, k)
        modes.append(_publish(con, ingest, wh).mode)
        assert _equal_to_ingest(con, wh) == {}
        assert os.stat(wh).st_nlink == 2  # a hard link to one snapshot file, not a copy
    # the first two runs create the two snapshots (by copy), then they alternate, patched
    assert modes == ["copy", "copy", "delta", "delta"]
    assert len(list(publish.snapshot_dir(wh).glob("*.duckdb"))) == 2
    assert _reader_count(wh) == 12


def test_a_reader_keeps_its_snapshot_and_never_blocks_the_writer(setup) -> None:
    con, ingest, wh = setup
    w = Writer(con)
    _run(w, 4)
    _publish(con, ingest, wh)
    _run(w, 2)
    _publish(con, ingest, wh)
    # an analyst in another process opens the published file and keeps it open
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys
            c = duckdb.connect({str(wh)!r}, read_only=True)
            print(c.execute("SELECT count(*) FROM message_facts").fetchall()[0][0], flush=True)
            sys.stdin.readline()   # hold the snapshot until told
            print(c.execute("SELECT count(*) FROM message_facts").fetchall()[0][0], flush=True)
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "6"
        held = wh.stat().st_ino
        for k in (3, 1, 2):  # three runs while the reader holds one snapshot: it is never patched
            _run(w, k)
            report = _publish(con, ingest, wh)
            assert Path(report.path).stat().st_ino != held if Path(report.path).exists() else True
            assert _equal_to_ingest(con, wh) == {}
        assert _reader_count(wh) == 12  # new opens see the newest
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "6"  # the reader still sees what it opened
    finally:
        reader.kill()
        reader.wait()
    assert len(list(publish.snapshot_dir(wh).glob("*.duckdb"))) <= publish.KEEP


def test_a_reader_in_this_process_is_seen_too(setup) -> None:
    """POSIX locks do not conflict within one process: the forked probe is what protects a reader here."""
    con, ingest, wh = setup
    w = Writer(con)
    _run(w, 2)
    _publish(con, ingest, wh)
    _run(w, 2)
    _publish(con, ingest, wh)
    mem = duckdb.connect()
    mem.execute(f"ATTACH '{wh}' AS held (READ_ONLY)")
    try:
        held = next(p for p in publish.snapshot_dir(wh).glob("*.duckdb") if p.stat().st_ino == wh.stat().st_ino)
        assert publish.in_use(held)
        before = mem.execute("SELECT count(*) FROM held.message_facts").fetchall()[0][0]
        for k in (1, 1, 1):
            _run(w, k)
            _publish(con, ingest, wh)
        assert mem.execute("SELECT count(*) FROM held.message_facts").fetchall()[0][0] == before == 4
        assert _reader_count(wh) == 7
    finally:
        mem.close()
    assert not publish.in_use(held) if held.exists() else True


def test_a_changed_table_or_a_full_build_publishes_by_copy(setup) -> None:
    con, ingest, wh = setup
    w = Writer(con)
    for k in (2, 2, 2):
        _run(w, k)
        _publish(con, ingest, wh)
    incremental.refresh(con, rebuild=True)  # the reference build: every fact rewritten
    assert publish.publish(con, ingest, wh).mode == "copy"
    _run(w, 1)
    incremental.refresh(con)
    con.execute("ALTER TABLE ingest_files ADD COLUMN note VARCHAR")
    assert publish.publish(con, ingest, wh).mode == "copy"
    assert _equal_to_ingest(con, wh) == {}


# --------------------------------------------------------------------------- kill -9


KILL_POINTS = [
    "facts:deleted:_message_facts", "facts:deleted:_experiment_exposures", "facts:before-commit",
    "publish:table:_message_facts", "publish:table:twilio_messages", "publish:before-commit",
    "publish:copied", "publish:before-link", "publish:linked",
]

_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from switchboard.ingest import incremental, publish, warehouse
    from tests.incremental_util import Writer
    from tests.test_incremental_publish import _run
    ingest, wh, k = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    con = warehouse.connect(ingest)
    _run(Writer(con), k)
    incremental.refresh(con)
    publish.publish(con, ingest, wh)
    print("survived")
""")


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_at_any_step_leaves_a_usable_snapshot_and_the_next_run_converges(setup, point) -> None:
    con, ingest, wh = setup
    w = Writer(con)
    _run(w, 3)
    _publish(con, ingest, wh)
    if point != "publish:copied":  # a second snapshot, so the next publish patches instead of copying
        _run(w, 2)
        _publish(con, ingest, wh)
    published = _reader_count(wh)
    con.close()
    env = {**os.environ, "SWITCHBOARD_KILL_AT": point}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(ingest), str(wh), "4"], env=env, cwd=Path(__file__).parents[1],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == -9, (done.stdout, done.stderr[-2000:])  # killed where asked, not before
    # readers: the published file opens and holds a whole snapshot (the old one, or the new one once linked)
    assert _reader_count(wh) in (published, published + 4)
    # the next run converges: facts equal the full rebuild, the published file equals the ingest file
    con = warehouse.connect(ingest)
    try:
        _run(Writer(con), 1)
        _publish(con, ingest, wh)
        assert _equal_to_ingest(con, wh) == {}
        assert _reader_count(wh) == published + 5
        from tests.incremental_util import incremental_equals_rebuild

        assert incremental_equals_rebuild(con, ingest, ingest.parent) == {}
    finally:
        con.close()
