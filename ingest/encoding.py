"""Body encoding and length as SQL expressions, so bodies are measured in DuckDB and never stored.

Same rules as ``switchboard.core.segments.segment_info`` (3GPP TS 23.038): a body is
GSM-7 when every character is in the default alphabet or its extension table
(extension characters cost two septets); otherwise UCS-2, counted in UTF-16 code units
(a character outside the BMP is a surrogate pair). The test suite checks these
expressions against ``segment_info`` on generated bodies.
"""

from __future__ import annotations

from switchboard.core.segments import GSM7_BASIC, GSM7_EXTENSION


def _class(chars: frozenset[str]) -> str:
    out = []
    for ch in sorted(chars):
        if ch in "\\]^-[":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\f":
            out.append("\\f")
        else:
            out.append(ch)
    return "".join(out)


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


_GSM_ALL = _lit("^[" + _class(GSM7_BASIC | GSM7_EXTENSION) + "]*$")
_NOT_EXT = _lit("[^" + _class(GSM7_EXTENSION) + "]")
_NOT_ASTRAL = _lit("[^\\x{10000}-\\x{10FFFF}]")
_EXT = _lit("[" + _class(GSM7_EXTENSION) + "]")
_ASTRAL = _lit("[\\x{10000}-\\x{10FFFF}]")


def encoding_sql(body: str) -> str:
    """'GSM-7' / 'UCS-2' / NULL (no body) for the SQL expression ``body``."""
    return f"CASE WHEN {body} IS NULL THEN NULL WHEN regexp_matches({body}, {_GSM_ALL}) THEN 'GSM-7' ELSE 'UCS-2' END"


def length_sql(body: str) -> str:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) of ``body``."""
    return (
        f"CASE WHEN {body} IS NULL THEN NULL "
        f"WHEN regexp_matches({body}, {_GSM_ALL}) "
        f"THEN length({body}) + CASE WHEN regexp_matches({body}, {_EXT}) "
        f"THEN length(regexp_replace({body}, {_NOT_EXT}, '', 'g')) ELSE 0 END "
        f"ELSE length({body}) + CASE WHEN regexp_matches({body}, {_ASTRAL}) "
        f"THEN length(regexp_replace({body}, {_NOT_ASTRAL}, '', 'g')) ELSE 0 END END"
    )
