"""Reading files one record at a time, so one bad line never costs the file's good lines.

DuckDB's readers refuse a whole file for one invalid UTF-8 byte, one line over their size
limit or one CSV field with a stray quote. These readers are the fallback (and, for CSV,
the reader): each line, or CSV record, comes out with its 1-based line number and, when it
cannot be a record, the problem, which becomes the reject's reason. Blank lines are not
records. Memory stays bounded by :data:`MAX_LINE_BYTES` per line.
"""

from __future__ import annotations

import csv
import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

MAX_LINE_BYTES = 1 << 20  # a send-log record is a few hundred bytes; 1 MiB is surely not one
MAX_RECORD_LINES = 100  # a CSV record (quoted newlines) spanning more lines is taken for a stray quote
RAW_CHARS = 10_000  # raw text kept in `rejects`
_BLANK = b" \t\r\n"


@contextmanager
def _no_gc() -> Iterator[None]:
    """Millions of small lists and strings, none in a cycle: the cyclic GC would walk them all again and
    again as they pile up (it made a 200k-row CSV take 20 s instead of 2)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Damaged(Exception):
    """The file ended in a way no line can describe (a cut gzip stream); the lines before it stand."""


def _read_raw_lines(f: IO[bytes]) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes without the newline, whether the line was cut at MAX_LINE_BYTES)."""
    n = 0
    while True:
        chunk = f.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        n += 1
        cut = len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n")
        if cut:  # skip the rest of the line without holding it
            while (more := f.readline(MAX_LINE_BYTES)) and not more.endswith(b"\n"):
                pass
            chunk = chunk[:MAX_LINE_BYTES]
        yield n, chunk.rstrip(b"\r\n"), cut


def decode_lines(opener: Callable[[], IO[bytes]]) -> Iterator[tuple[int, str, str | None]]:
    """Each non-blank line as (line number, text, problem or None). Invalid UTF-8 and over-long lines
    are problems of that line only. A stream that breaks mid-file raises :class:`Damaged` after the
    lines before the break."""
    last = 0
    try:
        with opener() as f:
            for n, raw, cut in _read_raw_lines(f):
                last = n
                if not raw.strip(_BLANK):
                    continue
                text = raw.decode("utf-8", "replace")[:RAW_CHARS]
                if cut:
                    yield n, text, f"line longer than {MAX_LINE_BYTES:,} bytes"
                    continue
                try:
                    yield n, raw.decode("utf-8"), None
                except UnicodeDecodeError as exc:
                    yield n, text, f"invalid UTF-8 at byte {exc.start + 1} of the line"
    except (EOFError, OSError) as exc:  # gzip cut short or corrupt: what was read stands
        raise Damaged(f"file damaged after line {last}: {type(exc).__name__}: {exc}") from None


def lines_table(opener: Callable[[], IO[bytes]]) -> tuple[pa.Table, str | None]:
    """The non-blank lines as an Arrow table (line, raw, problem), and the damage message if any."""
    line: list[int] = []
    raw: list[str] = []
    problem: list[str | None] = []
    damage = None
    with _no_gc():
        try:
            for n, text, why in decode_lines(opener):
                line.append(n)
                raw.append(text)
                problem.append(why)
        except Damaged as exc:
            damage = str(exc)
    table = pa.table({"line": pa.array(line, pa.int64()), "raw": pa.array(raw, pa.string()),
                      "problem": pa.array(problem, pa.string())})
    return table, damage


# --------------------------------------------------------------------------- CSV


def _csv_lines(opener: Callable[[], IO[bytes]]) -> list[tuple[str, str | None]]:
    """Every line (blank ones too, as CSV records may span them) with its problem; the BOM dropped."""
    out: list[tuple[str, str | None]] = []
    with opener() as f:
        for n, raw, cut in _read_raw_lines(f):
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if cut:
                out.append((raw.decode("utf-8", "replace")[:RAW_CHARS], f"line longer than {MAX_LINE_BYTES:,} bytes"))
                continue
            try:
                out.append((raw.decode("utf-8"), None))
            except UnicodeDecodeError as exc:
                out.append((raw.decode("utf-8", "replace"), f"invalid UTF-8 at byte {exc.start + 1} of the line"))
    return out


class _CsvRecords:
    """Python's csv parser over held lines, restartable at any line: a record that does not parse or
    has the wrong number of fields costs its first line only, and parsing resumes on the next."""

    def __init__(self, lines: list[tuple[str, str | None]], width: int) -> None:
        self.lines, self.width, self.pos = lines, width, 1  # line 0 is the header
        self.start = 1  # first line of the record being parsed

    def _feed(self) -> Iterator[str]:
        while self.pos < len(self.lines) and self.pos - self.start < MAX_RECORD_LINES:
            text = self.lines[self.pos][0]
            self.pos += 1
            yield text + "\n"

    def __iter__(self) -> Iterator[tuple[int, list[str] | None, str, str | None]]:
        """(line number, fields or None, raw text, problem or None) for every record."""
        while self.pos < len(self.lines):
            reader = csv.reader(self._feed(), strict=True)
            while self.pos < len(self.lines):
                start = self.start = self.pos
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    yield self._bad(start, f"malformed CSV record ({exc})")
                    break  # a fresh reader from the line after the bad one
                span = self.lines[start:self.pos]
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line is not a record
                problem = next((p for _, p in span if p), None)
                if problem is None and len(row) != self.width:
                    problem = f"malformed CSV record: {len(row)} field(s), the header has {self.width}"
                if problem is None:
                    yield start + 1, row, "", None
                elif self.pos - start > 1:  # a quote that opened a multi-line record: only its first line
                    yield self._bad(start, problem)
                    break
                else:
                    yield start + 1, None, span[0][0][:RAW_CHARS], problem

    def _bad(self, start: int, problem: str) -> tuple[int, None, str, str]:
        self.pos = start + 1
        text, own = self.lines[start]
        return start + 1, None, text[:RAW_CHARS], own or problem


def _simple_records(lines: list[tuple[str, str | None]], width: int
                    ) -> list[tuple[int, list[str] | None, str, str | None]] | None:
    """The common case at C speed: every record on its own line (one csv.reader pass over all lines, no
    parse error, one row per line). None when that does not hold: then :class:`_CsvRecords` restarts."""
    body = lines[1:]
    try:
        rows = list(csv.reader([text for text, _ in body], strict=True))
    except csv.Error:
        return None
    if len(rows) != len(body):  # a record spans lines (quoted newlines, or a stray quote)
        return None
    out: list[tuple[int, list[str] | None, str, str | None]] = []
    for k, (row, (text, problem)) in enumerate(zip(rows, body, strict=True)):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line is not a record
        if problem is None and len(row) != width:
            problem = f"malformed CSV record: {len(row)} field(s), the header has {width}"
        out.append((k + 2, row, "", None) if problem is None else (k + 2, None, text[:RAW_CHARS], problem))
    return out


def _text_column(values: Sequence[str] | None, n: int) -> pa.Array:
    """Text values with empty strings as NULL (as DuckDB's CSV reader has them); all NULL without values."""
    if values is None:
        return pa.nulls(n, pa.string())
    arr = pa.array(values, pa.string())
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def csv_table(opener: Callable[[], IO[bytes]], columns: tuple[str, ...]) -> pa.Table:
    """A CSV file (header first) as an Arrow table: ``columns`` as text (NULL when the header lacks one
    or the field is empty), plus line, raw and problem. One row per record, good or not."""
    with _no_gc():
        return _csv_table(opener, columns)


def _csv_table(opener: Callable[[], IO[bytes]], columns: tuple[str, ...]) -> pa.Table:
    lines = _csv_lines(opener)
    header = next(csv.reader([lines[0][0]])) if lines else []
    where = {name.strip(): i for i, name in enumerate(header)}
    records = _simple_records(lines, len(header))
    good_rows: list[list[str]] = []
    good_lines: list[int] = []
    bad: list[tuple[int, str, str | None]] = []
    for n, row, text, why in records if records is not None else _CsvRecords(lines, len(header)):
        if row is not None and why is None:
            good_rows.append(row)
            good_lines.append(n)
        else:
            bad.append((n, text, why))
    by_field = list(zip(*good_rows, strict=True)) if good_rows else []
    n_good, n_bad = len(good_rows), len(bad)
    cols: dict[str, pa.Array] = {}
    for c in columns:
        i = where.get(c)
        good = _text_column(by_field[i] if i is not None and by_field else None, n_good)
        cols[c] = pa.concat_arrays([good, pa.nulls(n_bad, pa.string())])
    cols["line"] = pa.array(good_lines + [b[0] for b in bad], pa.int64())
    cols["raw"] = pa.concat_arrays([pa.nulls(n_good, pa.string()), pa.array([b[1] for b in bad], pa.string())])
    cols["problem"] = pa.concat_arrays([pa.nulls(n_good, pa.string()), pa.array([b[2] for b in bad], pa.string())])
    return pa.table(cols)
