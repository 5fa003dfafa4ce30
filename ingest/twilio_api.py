"""Twilio Messages and Calls through the official SDK, incrementally, one transaction per page.

* The SDK does the HTTP, auth and paging (``…messages.page(...)`` then ``get_page(next_page_url)``);
  records are taken from the page's parsed payload (``page._payload``) instead of building
  ``MessageInstance`` objects, which would cap the ingest at about 57k records/s.
* A page goes to DuckDB as one JSON text; DuckDB unpacks, validates and types it
  (RFC 2822 dates, decimal prices), measures the body (encoding, length) and drops it,
  and upserts by sid where the row is newer (``date_updated``), in one transaction together
  with the rejects, the page's numbers' enrichment and the window's resume point. A run
  killed at any moment resumes at the next page; re-reading a page changes nothing.
* Cursor per (resource, account) in ``ingest_state``: the high-water mark of ``date_sent`` /
  ``start_time``. Each run reads from ``cursor - lag`` (statuses and prices change late).
* Pages are fetched one ahead in a thread while the previous one is written.
"""

from __future__ import annotations

import functools
import json
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from switchboard.ingest import bounds, changes, enrich, runs
from switchboard.ingest.encoding import encoding_sql, length_sql

PAGE_SIZE = 1000
RFC2822 = "%a, %d %b %Y %H:%M:%S %z"


class TwilioClient(Protocol):
    """What ingest uses of ``twilio.rest.Client``: the account it authenticates as, the 2010 API (lists,
    pages, fetches) and its HTTP client (whose ``retries`` count goes into the run report)."""

    account_sid: str
    http_client: Any  # a twilio.http.HttpClient; RetryingHttpClient counts its retries

    @property
    def api(self) -> Any: ...  # twilio.rest.api.ApiBase: .v2010.accounts(sid).messages/.calls, .base_url


@dataclass(frozen=True)
class Resource:
    name: str  # messages | calls
    table: str
    cursor_field: str  # date_sent | start_time
    fields: tuple[str, ...]  # JSON fields read from each record
    reason_sql: str
    insert_columns: tuple[str, ...]
    select_sql: str  # typed expressions, in insert_columns order (over the staging relation `r`)
    update_columns: tuple[str, ...]
    # Statuses that will still change. A record stored in one of them whose cursor field the next
    # run's window cannot see (NULL, or outside it) is fetched by sid (see refresh_pending).
    pending_statuses: tuple[str, ...] = ()
    pending_needs_null_cursor: bool = False  # messages: only those with no date_sent yet (a "sent"
    # message outside the lag window is the lag's business; calls end within hours, so all of them)


def _ts(col: str) -> str:
    return f"coalesce(try_strptime({col}, '{RFC2822}'), TRY_CAST({col} AS TIMESTAMPTZ))"


def _bad_ts(col: str) -> str:
    return f"WHEN {col} IS NOT NULL AND {_ts(col)} IS NULL THEN 'bad {col}: ' || left({col}, 60)"


def _int(col: str) -> str:
    return f"TRY_CAST(TRY_CAST({col} AS DOUBLE) AS INTEGER)"


def _bad_int(col: str) -> str:
    return f"WHEN {col} IS NOT NULL AND {_int(col)} IS NULL THEN 'bad {col}: ' || left({col}, 60)"


def _implausible(timestamps: tuple[str, ...], counts: dict[str, float]) -> str:
    """The plausibility arms (ingest/bounds.py): every timestamp in range, every count and the price finite
    and in range. After the parse arms, so only values that parse reach them."""
    arms = [bounds.timestamp_out_of_bounds(_ts(c), c, c) for c in timestamps]
    arms += [bounds.number_out_of_range(_int(c), c, c, 0, high) for c, high in counts.items()]
    arms.append(bounds.number_out_of_range(_PRICE, "price", "price", -bounds.MAX_ABS_PRICE, bounds.MAX_ABS_PRICE))
    return "\n        ".join(arms)


_COMMON_REASONS = """
    WHEN sid IS NULL OR trim(sid) = '' THEN 'missing sid'
    WHEN account_sid IS NULL OR trim(account_sid) = '' THEN 'missing account_sid'
    WHEN status IS NULL OR trim(status) = '' THEN 'missing status'
    WHEN price IS NOT NULL AND TRY_CAST(price AS DECIMAL(12, 5)) IS NULL THEN 'bad price: ' || left(price, 60)"""

_PRICE = "TRY_CAST(price AS DECIMAL(12, 5))"
# Issue 18: an inbound message's body is kept only when it is one word of letters (up to 20) between
# optional spaces and punctuation: a keyword candidate (STOP, Arrêt, Help?) for ingest/responses.sql.
# Free text, digits (codes) and everything outbound are dropped like every other body.
_REPLY_WORD = (r"""CASE WHEN direction = 'inbound'
        AND regexp_full_match(body, '[\s\p{P}\p{S}]*\p{L}{1,20}[\s\p{P}\p{S}]*') THEN trim(body) END""")
# The member's number: To of an outbound message, From of an inbound one (its country, its carrier).
MEMBER_NUMBER = """CASE WHEN _page.direction = 'inbound' THEN _page."from" ELSE _page."to" END"""
_PRICE_USD = f"CAST(-{_PRICE} * fx.usd_per_unit AS DECIMAL(12, 5))"  # fx: fx_rates joined on price_unit

MESSAGES = Resource(
    name="messages",
    table="twilio_messages",
    cursor_field="date_sent",
    fields=("sid", "account_sid", "messaging_service_sid", "direction", "from", "to", "status", "error_code",
            "num_segments", "num_media", "body", "price", "price_unit", "date_created", "date_sent", "date_updated"),
    reason_sql=f"""CASE {_COMMON_REASONS}
        {_bad_int('error_code')} {_bad_int('num_segments')} {_bad_int('num_media')}
        {_bad_ts('date_created')} {_bad_ts('date_sent')} {_bad_ts('date_updated')}
        {_implausible(('date_created', 'date_sent', 'date_updated'),
                      {'num_segments': bounds.MAX_COUNT, 'num_media': bounds.MAX_COUNT})}
    END""",
    insert_columns=("sid", "account_sid", "messaging_service_sid", "direction", "from_number", "to_number", "status",
                    "error_code", "num_segments", "num_media", "body_encoding", "body_length", "price", "price_unit",
                    "price_usd", "date_created", "date_sent", "date_updated", "reply_word", "to_country", "to_carrier",
                    "source", "ingest_run_id", "loaded_at"),
    select_sql=f"""sid, account_sid, messaging_service_sid, direction, "from", "to", status,
        {_int('error_code')}, {_int('num_segments')}, {_int('num_media')},
        {encoding_sql('body')}, {length_sql('body')}, {_PRICE}, price_unit, {_PRICE_USD},
        {_ts('date_created')}, {_ts('date_sent')}, {_ts('date_updated')}, {_REPLY_WORD}""",
    update_columns=("messaging_service_sid", "direction", "from_number", "to_number", "status", "error_code",
                    "num_segments", "num_media", "body_encoding", "body_length", "price", "price_unit", "price_usd",
                    "date_created", "date_sent", "date_updated", "reply_word", "to_country", "to_carrier", "source",
                    "ingest_run_id", "loaded_at"),
    pending_statuses=("accepted", "scheduled", "queued", "sending"),
    pending_needs_null_cursor=True,
)

CALLS = Resource(
    name="calls",
    table="twilio_calls",
    cursor_field="start_time",
    fields=("sid", "account_sid", "parent_call_sid", "direction", "from", "to", "status", "answered_by", "duration",
            "price", "price_unit", "start_time", "end_time", "date_created", "date_updated"),
    reason_sql=f"""CASE {_COMMON_REASONS}
        {_bad_int('duration')}
        {_bad_ts('start_time')} {_bad_ts('end_time')} {_bad_ts('date_created')} {_bad_ts('date_updated')}
        {_implausible(('start_time', 'end_time', 'date_created', 'date_updated'),
                      {'duration': bounds.MAX_CALL_SECONDS})}
    END""",
    insert_columns=("sid", "account_sid", "parent_call_sid", "direction", "from_number", "to_number", "status",
                    "answered_by", "duration_s", "price", "price_unit", "price_usd", "start_time", "end_time",
                    "date_created", "date_updated", "to_country", "to_carrier", "source", "ingest_run_id", "loaded_at"),
    select_sql=f"""sid, account_sid, parent_call_sid, direction, "from", "to", status, answered_by,
        {_int('duration')}, {_PRICE}, price_unit, {_PRICE_USD},
        {_ts('start_time')}, {_ts('end_time')}, {_ts('date_created')}, {_ts('date_updated')}""",
    update_columns=("parent_call_sid", "direction", "from_number", "to_number", "status", "answered_by",
                    "duration_s", "price", "price_unit", "price_usd", "start_time", "end_time", "date_created",
                    "date_updated", "to_country", "to_carrier", "source", "ingest_run_id", "loaded_at"),
    pending_statuses=("queued", "initiated", "ringing", "in-progress"),
)

RESOURCES = {"messages": MESSAGES, "calls": CALLS}


def _text(v: Any) -> str | None:
    if v is None or v.__class__ is str:
        return v
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


def _staging_table(res: Resource, records: list[Any]) -> tuple[pa.Table, list[int]]:
    """The batch as an Arrow table of text columns (plus ``idx``); indexes of non-object records."""
    good = [i for i, r in enumerate(records) if isinstance(r, dict)]
    not_objects = [i for i, r in enumerate(records) if not isinstance(r, dict)] if len(good) < len(records) else []
    recs = [records[i] for i in good] if not_objects else records
    cols: dict[str, Any] = {"idx": pa.array(good, pa.int64())}
    for f in res.fields:
        values = [r.get(f) for r in recs]
        try:
            cols[f] = pa.array(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a number or object where text was expected
            cols[f] = pa.array([_text(v) for v in values], pa.string())
    return pa.table(cols), not_objects


def upsert_records(
    con: duckdb.DuckDBPyConnection,
    res: Resource,
    records: list[Any],
    *,
    run_id: int,
    source: str,
    location: str,
    reject_source: str,
) -> tuple[int, list[int], str | None]:
    """Validate and upsert one batch of API records inside the caller's transaction.

    Returns (rows loaded, indexes of rejected records, max cursor_field of the loaded rows).
    """
    if not records:
        return 0, [], None
    table, not_objects = _staging_table(res, records)
    con.register("_page_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _page AS SELECT *, {res.reason_sql} AS reason FROM _page_arrow")
    con.unregister("_page_arrow")
    bad, top = apply_staged(con, res, run_id=run_id, source=source)
    bad += [(i, "record is not a JSON object") for i in not_objects]
    if bad:
        rows = []
        for idx, reason in bad:
            rec = records[idx]
            if isinstance(rec, dict) and "body" in rec:  # bodies may hold one-time codes: never stored
                rec = {**rec, "body": "<dropped>"}
            rows.append((int(idx), json.dumps(rec, ensure_ascii=False, default=str)[:10_000], reason))
        runs.add_rejects(con, run_id, reject_source, location, rows)
    return len(records) - len(bad), [int(i) for i, _ in bad], top


def apply_staged(
    con: duckdb.DuckDBPyConnection, res: Resource, *, run_id: int, source: str
) -> tuple[list[tuple[int, str]], str | None]:
    """Upsert the good rows of temp table ``_page`` (text columns, ``idx``, ``reason``).

    Enriches the page's new numbers first (each distinct number is resolved once, ever),
    keeps the newest version of a sid (``date_updated``) whether it comes from this page or
    is already stored. Returns the (idx, reason) of bad rows and the max cursor value.
    """
    member = MEMBER_NUMBER if res is MESSAGES else '_page."to"'
    new_numbers = con.execute(
        f"""SELECT DISTINCT {member} AS n FROM _page WHERE reason IS NULL AND n IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM phone_numbers p WHERE p.number = {member})"""
    ).fetchall()
    if new_numbers:
        found = enrich.lookup_numbers(n for (n,) in new_numbers)
        con.register("_numbers_df", found)
        con.execute("INSERT OR IGNORE INTO phone_numbers SELECT number, country, carrier FROM _numbers_df")
        con.unregister("_numbers_df")
    cols = ", ".join(res.insert_columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in res.update_columns)
    dups = con.execute("SELECT count(sid) - count(DISTINCT sid) FROM _page WHERE reason IS NULL").fetchall()[0][0]
    dedupe = (  # the same sid twice in one batch (a record updated between two pages): keep the newest
        f"QUALIFY row_number() OVER (PARTITION BY sid ORDER BY {_ts('date_updated')} DESC NULLS LAST, idx DESC) = 1"
        if dups else ""
    )
    con.execute(
        f"""INSERT INTO {res.table} ({cols})
            SELECT {res.select_sql}, p.country, p.carrier, $source, $run_id, current_timestamp
            FROM _page LEFT JOIN phone_numbers p ON p.number = {member}
            LEFT JOIN fx_rates fx ON fx.currency = upper(coalesce(_page.price_unit, 'USD'))
            WHERE reason IS NULL
            {dedupe}
            ON CONFLICT (sid) DO UPDATE SET {updates}
            WHERE {res.table}.date_updated IS NULL
               OR excluded.date_updated > {res.table}.date_updated
               -- equally new: the same source may refresh it (a late price), another may not
               -- (a BulkExport file does not relabel what the API already gave)
               OR (excluded.date_updated = {res.table}.date_updated AND excluded.source = {res.table}.source
                   -- ...and only when something differs: an unchanged re-read (the lag window) changes
                   -- nothing, so the row's ingest_run_id stays and the incremental facts skip it
                   AND ({_content(res, res.table)}) IS DISTINCT FROM ({_content(res, 'excluded')}))""",
        {"source": source, "run_id": run_id},
    )
    bad = [(int(i), r) for i, r in con.execute(
        "SELECT idx, reason FROM _page WHERE reason IS NOT NULL ORDER BY idx").fetchall()]
    top = con.execute(
        f"SELECT max({_ts(res.cursor_field)}) FROM _page WHERE reason IS NULL"
    ).fetchall()[0][0]
    return bad, (top.astimezone(UTC).isoformat() if top else None)


def _content(res: Resource, alias: str) -> str:
    """The row's stored content as one row value (bookkeeping columns left out)."""
    cols = [c for c in res.update_columns if c not in ("ingest_run_id", "loaded_at")]
    return "ROW(" + ", ".join(f"{alias}.{c}" for c in cols) + ")"


# --------------------------------------------------------------------------- state


@dataclass
class State:
    cursor: str | None
    window_lo: str | None
    window_hi: str | None
    resume_uri: str | None
    window_max: str | None


def load_state(con: duckdb.DuckDBPyConnection, key: str) -> State:
    rows = con.execute(
        "SELECT cursor, window_lo, window_hi, resume_uri, window_max FROM ingest_state WHERE source = ?", [key]
    ).fetchall()
    return State(*rows[0]) if rows else State(None, None, None, None, None)


def save_state(con: duckdb.DuckDBPyConnection, key: str, st: State) -> None:
    con.execute(
        """INSERT INTO ingest_state (source, cursor, updated_at, window_lo, window_hi, resume_uri, window_max)
           VALUES (?, ?, current_timestamp, ?, ?, ?, ?)
           ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at,
               window_lo = excluded.window_lo, window_hi = excluded.window_hi,
               resume_uri = excluded.resume_uri, window_max = excluded.window_max""",
        [key, st.cursor, st.window_lo, st.window_hi, st.resume_uri, st.window_max],
    )


def _max_iso(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if datetime.fromisoformat(a) >= datetime.fromisoformat(b) else b


def _parse_dt(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- paging


@dataclass
class FetchedPage:
    records: list[Any]
    next_page_uri: str | None
    location: str


def _list_resource(client: TwilioClient, account_sid: str, res: Resource) -> Any:
    account = client.api.v2010.accounts(account_sid)
    return account.messages if res.name == "messages" else account.calls


def _first_page(lst: Any, res: Resource, lo: datetime | None, hi: datetime | None) -> Any:
    from twilio.base import values

    unset = values.unset
    if res.name == "messages":
        return lst.page(date_sent_after=lo or unset, date_sent_before=hi or unset, page_size=PAGE_SIZE)
    return lst.page(start_time_after=lo or unset, start_time_before=hi or unset, page_size=PAGE_SIZE)


def _fetch(fn: Callable[[], Any], attempts: int = 5) -> Any:
    """A page whose body arrived cut (connection dropped mid-body) fails to parse: fetch it again."""
    for attempt in range(attempts):
        try:
            return fn()
        except json.JSONDecodeError:
            if attempt == attempts - 1:
                raise


def iter_pages(
    client: TwilioClient, account_sid: str, res: Resource, lo: datetime | None, hi: datetime | None,
    resume_uri: str | None,
) -> Iterator[FetchedPage]:
    lst = _list_resource(client, account_sid, res)
    if resume_uri:
        url = client.api.v2010.domain.absolute_url(resume_uri)
        page = _fetch(functools.partial(lst.get_page, url))
        location = resume_uri
    else:
        start: Callable[[], Any] = lambda: _first_page(lst, res, lo, hi)
        page = _fetch(start)
        location = page._payload.get("uri") or f"{res.name}:{account_sid}:first"
    while True:
        payload = page._payload
        records = page.load_page(payload)
        nxt = payload.get("next_page_uri") or None
        yield FetchedPage(records if isinstance(records, list) else [records], nxt, location)
        if not nxt:
            return
        url = page.next_page_url
        location = nxt
        page = _fetch(functools.partial(lst.get_page, url))


class prefetch:
    """Run the page iterator in a thread, ``depth`` pages ahead (HTTP overlaps the DuckDB writes)."""

    _DONE = object()

    def __init__(self, pages: Iterator[FetchedPage], depth: int = 10) -> None:
        self.q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.finished = False
        self.thread = threading.Thread(target=self._work, args=(pages,), name="twilio-prefetch", daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, pages: Iterator[FetchedPage]) -> None:
        try:
            for p in pages:
                if not self._put(p):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(exc)

    def ready(self) -> bool:
        return not self.q.empty()

    def __iter__(self) -> prefetch:
        return self

    def __next__(self) -> FetchedPage:
        if self.finished:
            raise StopIteration
        item = self.q.get()
        if item is self._DONE:
            self.finished = True
            raise StopIteration
        if isinstance(item, BaseException):
            self.finished = True
            self.stop.set()
            raise item
        return item

    def __del__(self) -> None:
        self.stop.set()


# --------------------------------------------------------------------------- one (resource, account)


def list_accounts(client: TwilioClient) -> list[str]:
    """The client's account and every subaccount it can see (Accounts.json lists both)."""
    from switchboard.core.twilio import TwilioAuthError

    sids = [client.account_sid]
    try:
        listed = client.api.v2010.accounts.list(page_size=1000)
    except TwilioAuthError:  # credentials that may not list accounts: ingest their own account only
        return sids          # (bad credentials fail again, with the same message, on the first page)
    for acct in listed:
        if acct.sid not in sids:
            sids.append(acct.sid)
    return sids


@dataclass
class _Stream:
    key: str
    res: Resource
    state: State
    pages: prefetch
    batches: Iterator[list[FetchedPage]]
    account_sid: str = ""
    client: TwilioClient | None = None
    lo: datetime | None = None  # the window read (None: unbounded)
    hi: datetime | None = None
    # --full-refresh read from its first page: a temp table of every sid the read returned (rejected
    # records included), so that, when the last page arrives, rows of the window it did not return
    # are deleted in that page's transaction (see _delete_vanished)
    seen: str | None = None
    complete: bool = False


def _open_stream(
    con: duckdb.DuckDBPyConnection, client: TwilioClient, account_sid: str, res: Resource, *,
    lag: timedelta, since: datetime | None, until: datetime | None, full_refresh: bool,
) -> _Stream:
    """Decide the window from the stored state (resume, cursor - lag, or --since/--until) and start fetching."""
    key = f"{res.name}:{account_sid}"
    st = load_state(con, key)
    explicit = since is not None or until is not None or full_refresh
    if st.resume_uri and not explicit:
        lo, hi, resume = _parse_dt(st.window_lo), _parse_dt(st.window_hi), st.resume_uri
    else:
        if full_refresh or since is not None:
            lo = since
        else:
            cur = _parse_dt(st.cursor)
            lo = cur - lag if cur else None
        hi, resume = until, None
        st.window_max = None
    st.window_lo = lo.isoformat() if lo else None
    st.window_hi = hi.isoformat() if hi else None
    seen = None
    if full_refresh and resume is None:
        seen = "_seen_" + re.sub(r"\W", "_", key)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {seen} (sid VARCHAR)")
    pages = prefetch(iter_pages(client, account_sid, res, lo, hi, resume))
    return _Stream(key, res, st, pages, _batches(pages), account_sid, client, lo, hi, seen)


def ingest_streams(
    con: duckdb.DuckDBPyConnection,
    client: TwilioClient,
    streams: list[tuple[str, Resource]] | list[tuple[str, Resource, TwilioClient]],
    run_id: int,
    result: runs.SourceResult,
    *,
    lag: timedelta,
    since: datetime | None = None,
    until: datetime | None = None,
    full_refresh: bool = False,
    on_page: Callable[[int], None] | None = None,
) -> None:
    """Read several (account, resource) streams at once: each fetches in its own thread, this
    thread writes whichever has pages ready (DuckDB has one writer). Against the real API,
    whose pages take a round trip each, this overlaps the waits of all streams. A stream given
    as (account, resource, client) uses its own client (HTTP sessions are not shared by threads).

    Then, for each stream whose window was read to the end, the records still pending in the
    warehouse that the window could not see are fetched by sid (:func:`refresh_pending`)."""
    opened = [_open_stream(con, spec[2] if len(spec) > 2 else client, spec[0], spec[1], lag=lag, since=since,
                           until=until, full_refresh=full_refresh)
              for spec in streams]
    live = list(opened)
    try:
        while live:
            progressed = False
            for stream in list(live):
                if not (stream.pages.ready() or stream.pages.finished):
                    continue
                batch = next(stream.batches, None)
                if batch is None:
                    live.remove(stream)
                    continue
                _write_batch(con, stream, batch, run_id, result, on_page)
                progressed = True
            if not progressed and live:
                time.sleep(0.002)
    finally:
        for stream in opened:
            stream.pages.stop.set()
            if stream.seen:
                con.execute(f"DROP TABLE IF EXISTS {stream.seen}")
    for stream in opened:
        if stream.complete:
            refresh_pending(con, stream.client or client, stream.account_sid, stream.res, stream.lo, stream.hi, run_id,
                            result, on_page)


def ingest_resource(
    con: duckdb.DuckDBPyConnection,
    client: TwilioClient,
    account_sid: str,
    res: Resource,
    run_id: int,
    result: runs.SourceResult,
    *,
    lag: timedelta,
    since: datetime | None = None,
    until: datetime | None = None,
    full_refresh: bool = False,
    on_page: Callable[[int], None] | None = None,
) -> None:
    """One (account, resource) stream; see :func:`ingest_streams`."""
    ingest_streams(con, client, [(account_sid, res)], run_id, result, lag=lag, since=since, until=until,
                   full_refresh=full_refresh, on_page=on_page)


def _write_batch(
    con: duckdb.DuckDBPyConnection,
    stream: _Stream,
    batch: list[FetchedPage],
    run_id: int,
    result: runs.SourceResult,
    on_page: Callable[[int], None] | None,
) -> None:
    """One transaction: the batch's rows, rejects, enrichment, the stream's resume point and the audit counts
    (and, on a full refresh's last page, the deletion of what the source no longer holds)."""
    res, st = stream.res, stream.state
    records = [r for p in batch for r in p.records]
    last = batch[-1]
    with runs.transaction(con):
        good, bad, top = upsert_records(
            con, res, records, run_id=run_id, source="api", location=batch[0].location,
            reject_source=f"twilio-{res.name}",
        )
        if stream.seen and records:
            con.execute(f"INSERT INTO {stream.seen} SELECT sid FROM _page WHERE sid IS NOT NULL")
        st.window_max = _max_iso(st.window_max, top)
        st.resume_uri = last.next_page_uri
        if not last.next_page_uri:  # window complete: the cursor moves, the window closes
            if stream.seen:
                result.deleted += _delete_vanished(con, stream)
            st.cursor = _max_iso(st.cursor, st.window_max)
            st.window_lo = st.window_hi = st.window_max = None
        save_state(con, stream.key, st)
        result.read += len(records)
        result.loaded += good
        result.rejected += len(bad)
        result.cursor = _max_iso(result.cursor, st.cursor or st.window_max)
        runs.progress_run(con, run_id, result)
    if not last.next_page_uri:
        stream.complete = True
    if on_page:
        on_page(len(records))


def _delete_vanished(con: duckdb.DuckDBPyConnection, stream: _Stream) -> int:
    """A --full-refresh read reached its last page: delete this account's rows of this resource that
    the read would have returned (loaded from the API, inside the window) but did not. Strict bounds
    (a record exactly on --since/--until is kept) and NULL cursor fields only when the window is
    unbounded (a bounded list cannot return them), so nothing the source still holds is deleted.
    Rows from BulkExport files are not the API's to delete (the API forgets old messages)."""
    res = stream.res
    cond = ["account_sid = $account", "source = 'api'", f"sid NOT IN (SELECT sid FROM {stream.seen})"]
    params: dict[str, Any] = {"account": stream.account_sid}
    if stream.lo is not None:
        cond.append(f"{res.cursor_field} > $lo")
        params["lo"] = stream.lo
    if stream.hi is not None:
        cond.append(f"{res.cursor_field} < $hi")
        params["hi"] = stream.hi
    return changes.delete_rows(con, res.table, " AND ".join(cond), params)


# --------------------------------------------------------------------------- pending records


PENDING_CHUNK = 100


def pending_sids(
    con: duckdb.DuckDBPyConnection, res: Resource, account_sid: str, lo: datetime | None, hi: datetime | None
) -> list[str]:
    """Sids of this account still in a pending status that a list over [lo, hi] cannot return:
    no cursor field yet (a queued call has no start_time, a queued message no date_sent; a
    StartTime/DateSent filter never matches them), or one outside the window (a call ringing
    when its start was read, re-read by nothing once the cursor moved past it)."""
    if lo is None and hi is None or not res.pending_statuses:
        return []  # an unbounded list returned every record
    cf = res.cursor_field
    outside = [f"{cf} IS NULL"]
    if not res.pending_needs_null_cursor:
        if lo is not None:
            outside.append(f"{cf} < $lo")
        if hi is not None:
            outside.append(f"{cf} > $hi")
    params: dict[str, Any] = {"account": account_sid, "statuses": list(res.pending_statuses)}
    if not res.pending_needs_null_cursor:
        params.update({k: v for k, v in (("lo", lo), ("hi", hi)) if v is not None})
    return [r[0] for r in con.execute(
        f"""SELECT sid FROM {res.table} WHERE account_sid = $account AND list_contains($statuses, status)
            AND ({' OR '.join(outside)}) ORDER BY sid""", params).fetchall()]


def _fetch_record(client: TwilioClient, account_sid: str, res: Resource, sid: str) -> Any | None:
    """The record's JSON through the SDK's fetch (the same payload a list page holds); None when gone (404)."""
    from twilio.base.exceptions import TwilioRestException

    ctx = _list_resource(client, account_sid, res)(sid)
    try:
        return _fetch(lambda: ctx._version.fetch(method="GET", uri=ctx._uri))
    except TwilioRestException as exc:
        if exc.status == 404:
            return None
        raise


PENDING_LIST_MIN = 5  # from this many pending calls on, list them by status rather than fetch each
# the pending values of the Calls list's Status filter (the OpenAPI call_enum_status); "initiated" is a
# status-callback event name, not a list filter: such a call is fetched by sid
LISTABLE_CALL_STATUSES = ("queued", "ringing", "in-progress")


def refresh_pending(
    con: duckdb.DuckDBPyConnection,
    client: TwilioClient,
    account_sid: str,
    res: Resource,
    lo: datetime | None,
    hi: datetime | None,
    run_id: int,
    result: runs.SourceResult,
    on_page: Callable[[int], None] | None = None,
) -> int:
    """Bring each pending record the window could not see (:func:`pending_sids`) up to date and upsert it,
    ``PENDING_CHUNK`` per transaction. A call queued at one run and completed (or canceled) by the next
    thus gets its final status whatever its start time. Returns the records fetched.

    Calls can be listed by ``Status``: from ``PENDING_LIST_MIN`` pending calls on, one list per pending
    status (a page of 1,000 per request) returns those still pending, and only the calls that have moved on
    are fetched one request each. Messages cannot be listed by status: one request per record, which
    against the real API is the handful in flight, not history."""
    sids = pending_sids(con, res, account_sid, lo, hi)
    records: list[Any] = []
    if res.name == "calls" and len(sids) >= PENDING_LIST_MIN:
        records = _still_pending(client, account_sid, res, set(sids))
        listed = {r.get("sid") for r in records}
        sids = [s for s in sids if s not in listed]
    gone = 0
    for sid in sids:
        rec = _fetch_record(client, account_sid, res, sid)
        if rec is None:
            gone += 1
        else:
            records.append(rec)
    for i in range(0, len(records), PENDING_CHUNK):
        chunk = records[i:i + PENDING_CHUNK]
        with runs.transaction(con):
            good, bad, _top = upsert_records(
                con, res, chunk, run_id=run_id, source="api", location=f"{res.name}:{account_sid}:pending",
                reject_source=f"twilio-{res.name}",
            )
            result.read += len(chunk)
            result.loaded += good
            result.rejected += len(bad)
            runs.progress_run(con, run_id, result)
        if on_page:
            on_page(len(chunk))
    result.pending_fetched += len(records)
    result.pending_gone += gone
    return len(records)


def _still_pending(client: TwilioClient, account_sid: str, res: Resource, wanted: set[str]) -> list[Any]:
    """The records among ``wanted`` that a list by each pending ``Status`` returns (all pages)."""
    lst = _list_resource(client, account_sid, res)
    out: list[Any] = []
    for status in (s for s in res.pending_statuses if s in LISTABLE_CALL_STATUSES):
        page = _fetch(functools.partial(lst.page, status=status, page_size=PAGE_SIZE))
        while True:
            records = page.load_page(page._payload)
            out.extend(r for r in (records if isinstance(records, list) else [records])
                       if isinstance(r, dict) and r.get("sid") in wanted)
            if not page._payload.get("next_page_uri"):
                break
            page = _fetch(functools.partial(lst.get_page, page.next_page_url))
    return out


def _batches(pages: Iterator[FetchedPage], max_records: int = 10 * PAGE_SIZE) -> Iterator[list[FetchedPage]]:
    """Pages already fetched are written together (one transaction, the last page's resume point):
    fewer, larger DuckDB statements. A batch never waits for a page that has not arrived."""
    it = iter(pages)
    pending: FetchedPage | None = None
    while True:
        first = pending or next(it, None)
        pending = None
        if first is None:
            return
        batch, n = [first], len(first.records)
        ready = getattr(it, "ready", None)
        while n < max_records and ready is not None and ready():
            p = next(it, None)
            if p is None:
                break
            batch.append(p)
            n += len(p.records)
        yield batch


# --------------------------------------------------------------------------- the source


@dataclass
class TwilioSource:
    """Messages and calls of every account the credentials can see, behind the source protocol
    (:class:`runs.Source`). ``client_factory`` makes one client per stream (HTTP sessions are not
    shared across the fetch threads)."""

    client_factory: Callable[[], TwilioClient]
    name: str = "twilio"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: runs.RunContext) -> None:
        client = self.client_factory()
        accounts = list_accounts(client)
        streams = [(account_sid, res, self.client_factory()) for account_sid in accounts for res in (MESSAGES, CALLS)]
        # batches are small: a second DuckDB thread costs more in handoffs than it gains (and the fetch
        # threads want the CPU)
        con.execute("SET threads = 1")
        try:
            ingest_streams(con, client, streams, ctx.run_id, ctx.result, lag=ctx.lag, since=ctx.since,
                           until=ctx.until, full_refresh=ctx.full_refresh, on_page=ctx.progress)
        finally:
            con.execute("RESET threads")
        retries = sum(getattr(c.http_client, "retries", 0) for c in [client] + [s[2] for s in streams])
        ctx.result.detail = f"{len(accounts)} account(s), {retries} retried request(s)"
