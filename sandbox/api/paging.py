"""List parameters as Twilio reads them: date filters, page size and number, the page envelope."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

from switchboard.sandbox.api.errors import ApiError

API = "/2010-04-01"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
_PAGING = ("PageSize", "Page", "PageToken")


def parse_when(value: str) -> tuple[float, bool]:
    """Epoch seconds of a filter value and whether it was a bare date (YYYY-MM-DD)."""
    v = value.strip()
    if len(v) == 10 and v[4] == "-" and v[7] == "-":
        d = datetime.strptime(v, "%Y-%m-%d").replace(tzinfo=UTC)
        return d.timestamp(), True
    try:
        d = datetime.fromisoformat(v)  # 3.11 reads a trailing Z
    except ValueError:
        try:
            d = parsedate_to_datetime(v)
        except (TypeError, ValueError):
            try:
                d = datetime.strptime(v, "%m/%d/%Y %H:%M:%S %Z")
            except ValueError:
                raise ApiError(400, 20001, f"Invalid date value '{value}'") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp(), False


def time_bounds(params: dict[str, str], name: str) -> tuple[float | None, float | None]:
    """[lo, hi) for Name, Name<, Name> as Twilio reads them: ``>`` on or after, ``<`` on or before,
    bare dates meaning the whole UTC day."""
    lo = hi = None
    if name in params:
        t, is_date = parse_when(params[name])
        lo, hi = (t, t + 86400) if is_date else (t, t + 1)
    if name + ">" in params:
        t, _ = parse_when(params[name + ">"])
        lo = t if lo is None else max(lo, t)
    if name + "<" in params:
        t, is_date = parse_when(params[name + "<"])
        t = t + 86400 if is_date else t + 1
        hi = t if hi is None else min(hi, t)
    return lo, hi


def page_args(params: dict[str, str]) -> tuple[int, int]:
    """(page size, page number) of a list request; ApiError 400 when out of range."""
    try:
        page_size = int(params.get("PageSize", DEFAULT_PAGE_SIZE))
        page = int(params.get("Page", 0))
    except ValueError:
        raise ApiError(400, 20001, "Invalid PageSize or Page") from None
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ApiError(400, 20001, f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    if page < 0:
        raise ApiError(400, 20001, "Page must be 0 or more")
    return page_size, page


def envelope(key: str, records: list, path: str, params: dict[str, str], page: int, page_size: int,
             next_token: str | None, prev_token: str | None) -> dict[str, Any]:
    """A list page as Twilio wraps it: the records under ``key`` and the page URIs."""
    filters = [(k, v) for k, v in params.items() if k not in _PAGING]

    def uri(extra: list[tuple[str, Any]]) -> str:
        return path + "?" + urlencode(filters + extra, quote_via=quote, safe="")

    start = page * page_size
    return {
        key: records,
        "end": start + max(len(records) - 1, 0),
        "first_page_uri": uri([("PageSize", page_size), ("Page", 0)]),
        "next_page_uri": uri([("PageSize", page_size), ("Page", page + 1), ("PageToken", next_token)])
        if next_token else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": uri([("PageSize", page_size), ("Page", page - 1), ("PageToken", prev_token)])
        if prev_token else None,
        "start": start,
        "uri": uri([(k, params[k]) for k in _PAGING if k in params]) if params else path,
    }
