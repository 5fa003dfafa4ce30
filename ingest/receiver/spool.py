"""The receiver's durable, append-only spool: JSONL segment files with group commit.

Layout: ``<spool>/seg-000000000001.jsonl``, ``seg-000000000002.jsonl``, … Each line is one event:
``<compact JSON>\\t<crc32 of the JSON, 8 hex>\\n``. The JSON never holds a raw tab (``json.dumps`` escapes
it), so the last tab splits a line unambiguously, and the CRC tells a whole line from a torn or zeroed one.

Why group commit: an ``fdatasync`` costs about a millisecond or more; one per request would cap the receiver
at the disk's sync rate. Here every request hands its lines to ONE writer thread through a queue; the
thread takes whatever has queued up while the previous sync ran, writes it with one ``write`` and one
``fdatasync``, and only then resolves the waiting requests' futures. So a 2xx is only ever sent for lines
that are on disk, and concurrent requests share a sync.

Memory is bounded by a byte budget: lines accepted but not yet synced may not exceed ``max_pending_bytes``;
past it ``append`` raises ``SpoolBusy`` at once (the HTTP layer answers 503 with Retry-After; Twilio retries).

Idempotency: every line carries a key (``"k"``). The spool refuses a key that is already waiting for its
sync (the second request waits on the same sync) or among the last ``dedupe_window`` keys written, a
window rebuilt from the newest segments at start. Beyond that window a redelivery is written again, and
``iter_records`` (the reader) drops repeats within what it reads; applying a status twice is harmless.

Crash safety: after ``kill -9`` or a power cut the last segment may end in a torn line that was never
acknowledged. ``Spool.open`` truncates it (its bytes were never answered 2xx) and always starts a new
segment, so a segment is only ever appended to by one process lifetime. Readers skip a line without its
newline (a write in progress) and count a bad CRC as corrupt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("switchboard.receiver")

SEGMENT_GLOB = "seg-*.jsonl"
_STOP = object()


class SpoolBusy(Exception):
    """The spool has more unsynced bytes than its budget: answer 503 and let the sender retry."""


def segment_path(directory: Path, seq: int) -> Path:
    return directory / f"seg-{seq:012d}.jsonl"


def segment_seq(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(sequence, path) of every segment, oldest first; files that merely look alike are ignored."""
    found = []
    for path in Path(directory).glob(SEGMENT_GLOB):
        try:
            found.append((segment_seq(path), path))
        except ValueError:
            continue
    return sorted(found)


@dataclass(frozen=True, order=True)
class Checkpoint:
    """A position in the spool: everything before byte ``offset`` of segment ``segment`` has been consumed.

    Its text form ``"<segment>:<offset>"`` is what a consumer stores (for example next to its cursor).
    """

    segment: int
    offset: int

    def __str__(self) -> str:
        return f"{self.segment}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        try:
            seg, off = text.split(":")
            return cls(int(seg), int(off))
        except ValueError:
            raise ValueError(f"not a spool checkpoint: {text!r} (expected '<segment>:<offset>')") from None


# One encoder for every line: json.dumps with non-default options builds a new JSONEncoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_line(record: dict) -> bytes:
    body = _ENCODER.encode(record).encode("utf-8")
    return body + b"\t" + f"{zlib.crc32(body):08x}".encode("ascii") + b"\n"


def decode_line(line: bytes) -> dict | None:
    """The record of one complete line (newline stripped), or None when its CRC or JSON is bad."""
    body, sep, crc = line.rpartition(b"\t")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


@dataclass
class ReadStats:
    """What a read saw besides the records it returned: a consumer logs these, nothing vanishes silently."""

    records: int = 0
    corrupt: int = 0          # complete lines whose CRC/JSON is bad (disk damage): skipped, counted
    torn_tail: int = 0        # segments ending in a partial line (a write in progress, or a crash)
    duplicates: int = 0       # keys already returned earlier in this read (redeliveries)
    ignored: dict[str, int] = field(default_factory=dict)  # events that are not statuses, by type
    position: Checkpoint | None = None  # just past the last complete line read


def iter_records(directory: Path, after: Checkpoint | None = None,
                 stats: ReadStats | None = None) -> Iterator[tuple[dict, Checkpoint]]:
    """(record, position just past it) for every complete, intact line after ``after``, oldest first."""
    stats = stats if stats is not None else ReadStats()
    for seq, path in list_segments(Path(directory)):
        if after is not None and seq < after.segment:
            continue
        start = after.offset if after is not None and seq == after.segment else 0
        yield from _iter_segment(seq, path, start, stats)


def _iter_segment(seq: int, path: Path, start: int, stats: ReadStats) -> Iterator[tuple[dict, Checkpoint]]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the `with` below; this try only catches a compacted file
    except FileNotFoundError:  # compacted between listing and opening
        return
    with handle:
        handle.seek(start)
        offset = start
        for line in handle:
            if not line.endswith(b"\n"):
                stats.torn_tail += 1  # not yet (or never) synced: not acknowledged, so not ours to read
                return
            offset += len(line)
            stats.position = Checkpoint(seq, offset)
            record = decode_line(line[:-1])
            if record is None:
                stats.corrupt += 1
                continue
            stats.records += 1
            yield record, Checkpoint(seq, offset)


def compact(directory: Path, upto: Checkpoint) -> list[Path]:
    """Deletes the segments wholly before ``upto`` (a consumer's committed checkpoint); returns them.

    The segment ``upto`` points into is kept: the writer may still be appending to it.
    """
    removed = []
    for seq, path in list_segments(Path(directory)):
        if seq < upto.segment:
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        _fsync_dir(Path(directory))
    return removed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover_tail(directory: Path) -> int:
    """Truncates a torn last line of the newest segment (never acknowledged); returns the bytes dropped."""
    segments = list_segments(directory)
    if not segments:
        return 0
    path = segments[-1][1]
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep == len(data):
        return 0
    with open(path, "r+b") as handle:
        handle.truncate(keep)
        os.fsync(handle.fileno())
    return len(data) - keep


@dataclass
class SpoolCounters:
    accepted: int = 0        # events durably written
    duplicates: int = 0      # redeliveries answered 2xx without writing again
    batches: int = 0         # fdatasync calls (group commits)
    busy: int = 0            # appends refused for lack of budget (503)
    failed: int = 0          # appends whose write or sync failed (503)


class Spool:
    """The writer side. ``open()`` inside the event loop, ``await append(records)``, ``close()`` at shutdown."""

    def __init__(self, directory: Path, *, segment_bytes: int = 64 << 20, max_pending_bytes: int = 32 << 20,
                 dedupe_window: int = 100_000, fsync: bool = True, max_batch_bytes: int = 8 << 20) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_pending_bytes = max_pending_bytes
        self.max_batch_bytes = max_batch_bytes
        self.dedupe_window = dedupe_window
        self.fsync = fsync  # False only for benchmarks' baselines: acknowledges unsynced data
        self.counters = SpoolCounters()
        self.pending_bytes = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._inflight: dict[str, asyncio.Future] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._seq = 0
        self._size = 0

    # --- lifecycle -------------------------------------------------------------------------------------
    def open(self) -> None:
        """Recovers the tail, rebuilds the dedupe window and starts the writer thread (call in the loop)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        dropped = recover_tail(self.directory)
        if dropped:
            log.warning("spool: dropped a torn last line (%d bytes, never acknowledged)", dropped)
        segments = list_segments(self.directory)
        self._seq = segments[-1][0] if segments else 0  # a new segment is created on the first write
        self._rebuild_window(segments)
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._writer, name="spool-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Lets the writer finish what is queued (those requests still get their answer), then stops it."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rebuild_window(self, segments: list[tuple[int, Path]]) -> None:
        keys: list[str] = []
        for seq, path in reversed(segments):  # newest first, until the window is full
            chunk = [rec.get("k") for rec, _ in _iter_segment(seq, path, 0, ReadStats())]
            keys[:0] = [k for k in chunk if isinstance(k, str)]
            if len(keys) >= self.dedupe_window:
                break
        for key in keys[-self.dedupe_window:] if self.dedupe_window else []:
            self._seen[key] = None

    # --- the request side (event-loop thread only) -----------------------------------------------------
    async def append(self, records: list[dict]) -> tuple[int, int]:
        """Makes ``records`` durable; returns (written, duplicates). Raises SpoolBusy or OSError."""
        fresh, waits, dups, batch_keys = [], [], 0, set()
        for record in records:
            key = record["k"]
            if key in batch_keys or key in self._seen:
                dups += 1
            elif key in self._inflight:
                dups += 1
                waits.append(self._inflight[key])  # answer only once the first copy is synced
            else:
                batch_keys.add(key)
                fresh.append(record)
        if fresh:
            waits.append(self._submit(fresh))
        for fut in waits:
            await asyncio.shield(fut)  # a client hanging up must not cancel a shared sync
        self.counters.duplicates += dups
        return len(fresh), dups

    def _submit(self, records: list[dict]) -> asyncio.Future:
        payload = b"".join(encode_line(r) for r in records)
        if self.pending_bytes + len(payload) > self.max_pending_bytes:
            self.counters.busy += 1
            raise SpoolBusy(f"{self.pending_bytes} bytes waiting for the disk")
        assert self._loop is not None, "Spool.open() was not called"
        fut = self._loop.create_future()
        keys = [r["k"] for r in records]
        for key in keys:
            self._inflight[key] = fut
        self.pending_bytes += len(payload)
        fut.add_done_callback(lambda f: self._settle(f, keys, len(payload)))
        self._queue.put((payload, fut))
        return fut

    def _settle(self, fut: asyncio.Future, keys: list[str], size: int) -> None:
        self.pending_bytes -= size
        for key in keys:
            self._inflight.pop(key, None)
        if fut.exception() is not None:
            self.counters.failed += len(keys)
            return
        self.counters.accepted += len(keys)
        if self.dedupe_window:
            for key in keys:
                self._seen[key] = None
            while len(self._seen) > self.dedupe_window:
                self._seen.popitem(last=False)

    # --- the writer thread -----------------------------------------------------------------------------
    def _writer(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, size = [first], len(first[0])
            while size < self.max_batch_bytes:  # everything that queued up during the last sync
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
                size += len(item[0])
            error: OSError | None = None
            try:
                self._write(b"".join(payload for payload, _ in batch))
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything, or every later request would hang
                error = exc if isinstance(exc, OSError) else OSError(f"{type(exc).__name__}: {exc}")
                log.error("spool: write failed, %d requests answered 503: %s", len(batch), exc)
            assert self._loop is not None
            self._loop.call_soon_threadsafe(_resolve, [fut for _, fut in batch], error)

    def _write(self, data: bytes) -> None:
        if self._fd is None or self._size >= self.segment_bytes:
            self._rotate()
        assert self._fd is not None
        start = self._size
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError:
            self._undo(start)
            raise
        self._size += len(data)
        self.counters.batches += 1

    def _undo(self, start: int) -> None:
        """After a failed write/sync: cut the partial batch off, or move to a fresh segment if even that fails."""
        try:
            os.ftruncate(self._fd, start)  # type: ignore[arg-type]
            os.lseek(self._fd, start, os.SEEK_SET)  # type: ignore[arg-type]
        except OSError:
            self._size = self.segment_bytes  # next write rotates; the reader skips what is torn

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._seq += 1
        path = segment_path(self.directory, self._seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        _fsync_dir(self.directory)  # the new file's name must survive a crash too


def _resolve(futures: list[asyncio.Future], error: OSError | None) -> None:
    for fut in futures:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
