"""The receiver's spool on real files: torn tails, corruption, restart, dedupe window, checkpoints, compaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from switchboard.ingest.receiver import Checkpoint, ReadStats, compact, iter_events
from switchboard.ingest.receiver.events import callback_record
from switchboard.ingest.receiver.spool import Spool, SpoolBusy, encode_line, iter_records, list_segments


def _record(n: int) -> dict:
    return callback_record("/twilio/status", [("MessageSid", f"SM{n:032d}"), ("MessageStatus", "delivered"),
                                              ("AccountSid", "AC" + "1" * 32)], None, "2026-12-04T10:00:00Z")


async def _write(spool: Spool, records: list[dict], *, together: bool = True) -> list[tuple[int, int]]:
    """Opens the spool, appends (concurrently, as requests would), closes; returns each append's result."""
    spool.open()
    try:
        if together:
            return list(await asyncio.gather(*(spool.append([r]) for r in records)))
        return [await spool.append([r]) for r in records]
    finally:
        spool.close()


def _sids(directory: Path, after: Checkpoint | None = None, stats: ReadStats | None = None) -> list[str]:
    return [e.sid for e in iter_events(directory, after, stats)]


def test_concurrent_appends_share_syncs_and_are_all_readable(tmp_path):
    spool = Spool(tmp_path)
    results = asyncio.run(_write(spool, [_record(i) for i in range(200)]))
    assert results == [(1, 0)] * 200
    assert spool.counters.accepted == 200 and 1 <= spool.counters.batches <= 200
    assert _sids(tmp_path) == [f"SM{i:032d}" for i in range(200)]


def test_torn_tail_is_skipped_then_truncated_on_restart(tmp_path):
    asyncio.run(_write(Spool(tmp_path), [_record(i) for i in range(5)]))
    [(_, segment)] = list_segments(tmp_path)
    whole = segment.read_bytes()
    torn = encode_line(_record(99))[:-7]  # a kill -9 in the middle of a write: no newline, no valid CRC
    segment.write_bytes(whole + torn)

    stats = ReadStats()
    assert _sids(tmp_path, stats=stats) == [f"SM{i:032d}" for i in range(5)]
    assert stats.torn_tail == 1 and stats.position == Checkpoint(1, len(whole))

    spool = Spool(tmp_path)  # restart: the torn bytes go, the next writes go to a new segment
    asyncio.run(_write(spool, [_record(5), _record(0)], together=False))
    assert segment.read_bytes() == whole
    assert [seq for seq, _ in list_segments(tmp_path)] == [1, 2]
    assert _sids(tmp_path) == [f"SM{i:032d}" for i in range(6)]
    assert spool.counters.duplicates == 1  # record 0 was already in the rebuilt dedupe window


def test_corrupt_line_in_the_middle_is_counted_and_skipped(tmp_path):
    asyncio.run(_write(Spool(tmp_path), [_record(i) for i in range(3)], together=False))
    [(_, segment)] = list_segments(tmp_path)
    lines = segment.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"delivered", b"delivereX")  # bit rot: the CRC no longer matches
    segment.write_bytes(b"\n".join(lines))
    stats = ReadStats()
    assert _sids(tmp_path, stats=stats) == [f"SM{0:032d}", f"SM{2:032d}"]
    assert stats.corrupt == 1


def test_checkpoint_reads_only_newer_events_and_compact_drops_consumed_segments(tmp_path):
    asyncio.run(_write(Spool(tmp_path), [_record(i) for i in range(4)]))
    stats = ReadStats()
    first = _sids(tmp_path, stats=stats)
    checkpoint = Checkpoint.parse(str(stats.position))  # what a consumer stores, as text
    asyncio.run(_write(Spool(tmp_path), [_record(i) for i in range(4, 7)]))  # a restart: segment 2

    assert len(first) == 4 and _sids(tmp_path, after=checkpoint) == [f"SM{i:032d}" for i in range(4, 7)]
    stats = ReadStats()
    list(iter_events(tmp_path, checkpoint, stats))
    removed = compact(tmp_path, stats.position)
    assert [p.name for p in removed] == ["seg-000000000001.jsonl"]
    assert _sids(tmp_path) == [f"SM{i:032d}" for i in range(4, 7)]


def test_reader_drops_redeliveries_beyond_the_write_window(tmp_path):
    # a window of 0 keys: the writer keeps nothing, so a later redelivery is written again…
    asyncio.run(_write(Spool(tmp_path, dedupe_window=0), [_record(1), _record(2), _record(1)], together=False))
    assert sum(1 for _ in iter_records(tmp_path)) == 3
    stats = ReadStats()
    assert _sids(tmp_path, stats=stats) == [f"SM{1:032d}", f"SM{2:032d}"]  # …and the reader yields it once
    assert stats.duplicates == 1


def test_over_budget_append_is_refused_before_anything_is_written(tmp_path):
    async def scenario() -> None:
        spool = Spool(tmp_path, max_pending_bytes=10)
        spool.open()
        try:
            with pytest.raises(SpoolBusy):
                await spool.append([_record(1)])
            assert spool.pending_bytes == 0 and spool.counters.busy == 1
        finally:
            spool.close()

    asyncio.run(scenario())
    assert list(iter_records(tmp_path)) == []


def test_checkpoint_text_is_validated():
    assert Checkpoint.parse("3:120") == Checkpoint(3, 120)
    with pytest.raises(ValueError, match="segment"):
        Checkpoint.parse("yesterday")


def test_a_failed_write_is_reported_and_the_next_append_goes_to_a_new_segment(tmp_path):
    """A full disk (/dev/full behind the first segment's name): that append fails (the HTTP layer answers
    503, nothing acknowledged), the writer survives and the next append lands in a fresh segment."""

    async def scenario() -> tuple[BaseException | None, tuple[int, int]]:
        spool = Spool(tmp_path)
        spool.open()
        (tmp_path / "seg-000000000001.jsonl").symlink_to("/dev/full")
        try:
            try:
                await spool.append([_record(1)])
                failure = None
            except OSError as exc:
                failure = exc
            second = await spool.append([_record(1)])  # the same key again: not a duplicate, it never landed
            assert spool.counters.failed == 1 and spool.pending_bytes == 0
            return failure, second
        finally:
            spool.close()

    failure, second = asyncio.run(scenario())
    assert failure is not None and second == (1, 0)
    (tmp_path / "seg-000000000001.jsonl").unlink()
    assert _sids(tmp_path) == [f"SM{1:032d}"]
