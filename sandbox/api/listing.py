"""List pages and single fetches over a resource (messages or calls), newest first.

Pages are cursors: ``PageToken`` is ``PA`` + the last sid of the page (older records follow)
or ``PB`` + the first (newer records), so pages stay stable while records are created."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from switchboard.sandbox.api.errors import ApiError, RawJSON
from switchboard.sandbox.api.paging import API, envelope, page_args
from switchboard.sandbox.api.store import Store


class Resource(Protocol):
    kind: str  # the list's key: "messages" or "calls"
    name: str  # the path segment: "Messages" or "Calls"
    store: Store

    def ids(self, ai: int, params: dict[str, str]) -> tuple[np.ndarray, list[int]]: ...
    def render(self, ids: list[int]) -> list[dict[str, Any]]: ...
    def render_raw(self, ids: list[int]) -> list[str] | None: ...


def list_page(res: Resource, now: Callable[[], float], ai: int, params: dict[str, str], path: str,
              raw: bool = False) -> dict[str, Any] | RawJSON:
    """One list page as a dict, or (``raw=True``, where the resource has a serialised path)
    as serialised JSON, which is faster for messages."""
    hist, live = res.ids(ai, params)
    r = res.store
    # Records created after "now" (an injected clock in the past) are not visible yet.
    # int(now): a float key would make numpy convert the whole column on every page.
    cut = np.searchsorted(r.cols["date_created"], math.floor(now()), "right")
    if hist.size and hist[-1] >= cut:
        hist = hist[: np.searchsorted(hist, cut, "left")]
    page_size, page = page_args(params)
    ids = _page_ids(r, hist, live, params.get("PageToken"), page, page_size)
    rendered = res.render_raw(ids) if raw else None
    records = [] if rendered is not None else res.render(ids)
    older_exists = bool(ids) and ((hist.size and hist[0] < ids[-1]) or any(i < ids[-1] for i in live))
    next_token = f"PA{r.sid(ids[-1])}" if ids and older_exists and len(ids) == page_size else None
    prev_token = f"PB{r.sid(ids[0])}" if ids and page > 0 else None
    env = envelope(res.kind, records, path, params, page, page_size, next_token, prev_token)
    if rendered is None:
        return env
    # Splice the pre-serialised records into the serialised envelope.
    env["end"] = page * page_size + max(len(ids) - 1, 0)
    text = json.dumps(env)
    head = f'{{"{res.kind}": ['
    assert text.startswith(head + "]")
    return RawJSON(head + ", ".join(rendered) + text[len(head):])


def _page_ids(r: Store, hist: np.ndarray, live: list[int], token: str | None, page: int,
              page_size: int) -> list[int]:
    """Row ids of the page, newest first: live records (newest) come before the history."""
    if not token:
        offset = page * page_size
        ids = live[::-1][offset: offset + page_size]
        if len(ids) < page_size:
            skip = max(0, offset - len(live))
            take = page_size - len(ids)
            end = hist.size - skip
            ids = ids + hist[max(0, end - take): max(0, end)][::-1].tolist()
        return ids
    if len(token) < 4 or token[:2] not in ("PA", "PB"):
        raise ApiError(400, 20001, f"Invalid PageToken '{token}'")
    anchor = r.rid(token[2:])
    if anchor is None:
        raise ApiError(400, 20001, f"Invalid PageToken '{token}'")
    if token[:2] == "PA":  # the page after the anchor: older records
        h = hist[: np.searchsorted(hist, anchor, "left")]
        lv = [i for i in live if i < anchor]
        return (lv[::-1] + h[::-1][:page_size].tolist())[:page_size] if lv else h[::-1][:page_size].tolist()
    # the page before the anchor: newer records
    h = hist[np.searchsorted(hist, anchor, "right"):]
    newer = h.tolist() + [i for i in live if i > anchor]
    return newer[:page_size][::-1]


def fetch(res: Resource, now: Callable[[], float], account_sid: str, ai: int, sid: str) -> dict[str, Any]:
    """One record of the account, if it exists and was created by ``now``; ApiError 404 otherwise."""
    r = res.store
    rid = r.rid(sid)
    if rid is not None:
        visible = rid >= r.n or r.cols["date_created"][rid] <= now()
        if r.account_of(rid) == ai and visible:
            return res.render([rid])[0]
    raise ApiError(404, 20404, f"The requested resource {API}/Accounts/{account_sid}/{res.name}/{sid}.json "
                               "was not found")
