"""Catalogue of Twilio error codes: official name, what kind of failure, what to do.

The catalogue lives in ``data/error_codes.csv`` (packaged as ``switchboard.data``) (one row per code, names as Twilio's
Error and Warning Dictionary gives them) and is loaded into the warehouse's
``error_codes`` dimension. ``load_error_catalog`` validates every row and names the
row and the fix when one is wrong, so a bad edit fails the ingest run loudly instead
of mislabelling failures on the dashboard.

Columns:

``code``        Twilio error code (int, unique).
``name``        Official name from the error dictionary.
``channel``     ``sms``, ``voice``, ``both`` or ``api`` (a REST request rejected before sending).
``category``    One of ``CATEGORIES`` (below).
``retryable``   True when resending the same message later, unchanged, can succeed.
``what_to_do``  One concrete remediation sentence.
``more_info``   ``https://www.twilio.com/docs/api/errors/<code>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from switchboard.core.resources import data_file

__all__ = [
    "CATEGORIES",
    "CATEGORY_DESCRIPTIONS",
    "CHANNELS",
    "COLUMNS",
    "DEFAULT_NAME",
    "ErrorInfo",
    "category_of",
    "describe",
    "load_error_catalog",
    "more_info_url",
]

DEFAULT_NAME = "error_codes.csv"  # in the packaged switchboard.data (core.resources)

COLUMNS = ("code", "name", "channel", "category", "retryable", "what_to_do", "more_info")
CHANNELS = ("sms", "voice", "both", "api")

CATEGORY_DESCRIPTIONS: dict[str, str] = {
    "invalid-number": "The number is malformed or cannot exist; fix the data, do not retry.",
    "unreachable-handset": "The number exists but could not be reached (phone off, no coverage, no route).",
    "unknown-handset": "The carrier does not know the number: it is not, or no longer, in service.",
    "landline": "The number cannot receive SMS (landline or non-mobile); use voice or email.",
    "carrier-filtered": "A carrier or Twilio blocked the message or call (spam filter, caller ID).",
    "opt-out": "The recipient unsubscribed (STOP); sending again is not allowed.",
    "registration-compliance": "The sender is not registered or verified (A2P 10DLC, toll-free, sender ID).",
    "account": "Our side: account status, credentials, geo permissions, sender or webhook configuration.",
    "rate-limit": "Too much traffic for a queue, sender, campaign or API; slow down and retry.",
    "content": "The body or media is missing, too large or not accepted.",
    "unknown": "Twilio or the carrier gave no usable reason, or the code is not in the catalogue.",
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_DESCRIPTIONS)

_MORE_INFO_PREFIX = "https://www.twilio.com/docs/api/errors/"
_BOOLEANS = {"true": True, "false": False}


def more_info_url(code: int) -> str:
    return f"{_MORE_INFO_PREFIX}{code}"


@dataclass(frozen=True)
class ErrorInfo:
    """One catalogue row, or a placeholder for a code the catalogue does not know."""

    code: int
    name: str
    channel: str
    category: str
    retryable: bool
    what_to_do: str
    more_info: str
    known: bool = True


def load_error_catalog(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate the catalogue; columns as in ``COLUMNS``, ``code`` int64, ``retryable`` bool.

    Raises ``ValueError`` naming the file, the CSV line and code, what is wrong and how to fix it.
    """
    if path is None:  # the shipped catalogue, wherever the package is installed
        with data_file(DEFAULT_NAME).open("rb") as handle:
            raw = pd.read_csv(handle, dtype=str, keep_default_na=False, encoding="utf-8")
        return _validate(raw, DEFAULT_NAME)
    source = Path(path)
    raw = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8")
    return _validate(raw, source.name)


def category_of(code: str | float, catalog: pd.DataFrame | None = None) -> str:
    """Category of a Twilio error code; ``"unknown"`` when the catalogue does not have it."""
    return describe(code, catalog).category


def describe(code: str | float, catalog: pd.DataFrame | None = None) -> ErrorInfo:
    """Everything the catalogue knows about ``code`` (default catalogue unless one is given).

    An unknown code gives category ``"unknown"``, name ``"Unknown error code NNNNN"`` and
    advice to look it up in Twilio's error dictionary.
    """
    number = _as_code(code)
    rows = _rows(catalog) if catalog is not None else _default_rows()
    if number in rows:
        return rows[number]
    url = more_info_url(number)
    return ErrorInfo(
        code=number,
        name=f"Unknown error code {number}",
        channel="unknown",
        category="unknown",
        retryable=False,
        what_to_do=f"Look the code up in Twilio's error dictionary at {url} and add it to the catalogue.",
        more_info=url,
        known=False,
    )


# --- internals -------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _default_rows() -> dict[int, ErrorInfo]:
    return _rows(load_error_catalog())


def _rows(catalog: pd.DataFrame) -> dict[int, ErrorInfo]:
    return {
        int(row.code): ErrorInfo(
            code=int(row.code),
            name=str(row.name),
            channel=str(row.channel),
            category=str(row.category),
            retryable=bool(row.retryable),
            what_to_do=str(row.what_to_do),
            more_info=str(row.more_info),
        )
        for row in catalog.itertuples(index=False)
    }


def _as_code(code: str | float) -> int:
    if isinstance(code, bool):
        raise TypeError("error code must be an int or a string of digits, not bool")
    if isinstance(code, int):
        return code
    if isinstance(code, float) and code.is_integer():
        return int(code)  # pandas turns a nullable int column with gaps into floats
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    raise ValueError(f"not a Twilio error code: {code!r} (expected digits such as 30003)")


def _validate(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [column for column in COLUMNS if column not in raw.columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}; the header must be {','.join(COLUMNS)}"
        )
    frame = raw[list(COLUMNS)].apply(lambda column: column.str.strip())
    seen: dict[int, int] = {}
    codes: list[int] = []
    retryable: list[bool] = []
    for position, row in enumerate(frame.itertuples(index=False)):
        line = position + 2  # the header is line 1
        where = f"{source} line {line} (code {row.code or '?'})"
        if not row.code.isdigit():
            raise ValueError(
                f"{where}: code {row.code!r} is not a whole number; write the numeric Twilio code"
            )
        code = int(row.code)
        if code in seen:
            raise ValueError(
                f"{where}: duplicate code {code}, already on line {seen[code]}; keep one row per code"
            )
        seen[code] = line
        for column in ("name", "what_to_do"):
            if not getattr(row, column):
                raise ValueError(f"{where}: {column} is empty; fill it in")
        if row.channel not in CHANNELS:
            raise ValueError(
                f"{where}: channel {row.channel!r} is not one of {', '.join(CHANNELS)}; use one of those"
            )
        if row.category not in CATEGORIES:
            raise ValueError(
                f"{where}: category {row.category!r} is not one of {', '.join(CATEGORIES)}; use one of those"
            )
        flag = row.retryable.lower()
        if flag not in _BOOLEANS:
            raise ValueError(f"{where}: retryable {row.retryable!r} must be true or false")
        if row.more_info != more_info_url(code):
            raise ValueError(f"{where}: more_info {row.more_info!r} should be {more_info_url(code)}")
        codes.append(code)
        retryable.append(_BOOLEANS[flag])
    frame["code"] = pd.Series(codes, dtype="int64")
    frame["retryable"] = pd.Series(retryable, dtype="bool")
    return frame.reset_index(drop=True)
