"""How many SMS segments a message body costs, and how to make it cheaper.

Pure functions, no I/O. ``segment_info(body)`` reproduces Twilio's segment count:

* **GSM-7** when every character is in the 3GPP TS 23.038 default alphabet or its
  extension table. Basic characters take one septet, extension characters
  (``^ { } \\ [ ~ ] | €`` and form feed) take two (escape + character). One segment
  holds 160 septets; once a message needs more, every segment carries a 6-octet
  concatenation header and holds 153 septets.
* **UCS-2** otherwise: every UTF-16 code unit counts (an emoji outside the BMP is a
  surrogate pair, two units). 70 units in a single segment, 67 per concatenated one.

Segments are filled by walking the text, never by dividing a length: a unit that does
not fit in what is left of a segment moves whole to the next one, so an escape pair
(``€`` after 152 plain septets) or a surrogate pair is never split. Like Twilio's own
segment calculator, a user-perceived character built from several code points (an
emoji with a skin tone or variation selector, a ZWJ family, a flag, a letter with
combining accents) is kept together too; only a cluster longer than a whole segment
is broken, between its code points.

An empty body is one GSM-7 segment: Twilio charges for it.

The second half of the module is advice. ``ucs2_characters`` lists what forces UCS-2;
the small ``GSM7_LOOKALIKES`` map (smart quotes, dashes, ellipsis, unusual spaces, ...)
says what each could become, and ``segments_if_replaced`` is the count after that
replacement, with characters that have no lookalike (emoji, most non-Latin letters)
dropped for the estimate and listed as ``unreplaceable``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "GSM7",
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "GSM7_LOOKALIKES",
    "UCS2",
    "SegmentInfo",
    "is_gsm7",
    "segment_count",
    "segment_info",
    "to_gsm7",
]

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# 3GPP TS 23.038 default alphabet, in table order (0x00..0x7F) with 0x1B (ESC) left out:
# ESC is not a character one can send, it introduces the extension table below.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ"
    "ÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Extension table: each costs two septets (ESC + code).
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[]~|€")

SINGLE_SEGMENT = {GSM7: 160, UCS2: 70}
CONCATENATED_SEGMENT = {GSM7: 153, UCS2: 67}

# Characters that push a body into UCS-2 although a GSM-7 lookalike reads the same.
# Modelled on the kinds Twilio's Smart Encoding replaces (typography pasted from word
# processors and phones), kept deliberately small: letters are content and are not
# rewritten here. An empty string means "remove" (invisible characters).
GSM7_LOOKALIKES: dict[str, str] = {
    # double quotes: “ ” „ ‟ « » ″ ʺ ˮ ❝ ❞ 〝 〞 ＂
    **dict.fromkeys(
        "\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033\u02ba\u02ee\u275d\u275e\u301d\u301e\uff02", '"'
    ),
    # single quotes, apostrophes, primes, accents used as apostrophes (the backtick too)
    **dict.fromkeys(
        "\u2018\u2019\u201a\u201b\u2032\u2039\u203a\u02b9\u02bb\u02bc"
        "\u02bd\u02c8\u02ca\u02cb\u00b4`\u275b\u275c\uff07",
        "'",
    ),
    # hyphens, dashes and minus signs: ‐ ‑ ‒ – — ― ⁃ − ﹣ －
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\ufe63\uff0d", "-"),
    # spaces: no-break, en/em/thin/hair and friends, ideographic, tab
    **dict.fromkeys(
        "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\t",
        " ",
    ),
    # invisible characters: dropping them changes nothing the reader sees
    **dict.fromkeys("\u200b\u200c\u2060\ufeff\u00ad", ""),
    # other punctuation
    "\u2026": "...",  # …
    "\u2022": "-",  # •
    "\u00b7": ".",  # ·
    "\u2044": "/",  # ⁄
    "\u2215": "/",  # ∕
    "\u02c6": "^",  # ˆ
    "\u02dc": "~",  # ˜
    "\uff0c": ",",  # fullwidth , . : ; ! ?
    "\uff0e": ".",
    "\uff1a": ":",
    "\uff1b": ";",
    "\uff01": "!",
    "\uff1f": "?",
}

_ZWJ = "\u200d"


@dataclass(frozen=True)
class SegmentInfo:
    """What a body costs and how to make it cheaper.

    ``length`` is in septets for GSM-7 (extension characters count 2) and in UTF-16
    code units for UCS-2. ``chars_per_segment`` is the capacity of each segment of
    *this* message: 160/70 when it fits in one segment, 153/67 once concatenated.
    """

    encoding: str
    segments: int
    length: int
    chars_per_segment: int
    ucs2_characters: tuple[str, ...]
    replacements: tuple[tuple[str, str], ...]
    unreplaceable: tuple[str, ...]
    segments_if_replaced: int

    @property
    def is_gsm7(self) -> bool:
        return self.encoding == GSM7

    @property
    def saving_segments(self) -> int:
        """Segments saved per message by using the GSM-7 lookalikes (and dropping the rest).

        Usually >= 0, but can be negative: "…" is one UCS-2 unit and three GSM-7 septets.
        """
        return self.segments - self.segments_if_replaced

    @property
    def advice(self) -> str:
        return self.suggestion()

    def suggestion(self) -> str:
        """One plain-English sentence for a template author."""
        if self.is_gsm7:
            return f"Already GSM-7: {_segments(self.segments)}."
        replaceable = [char for char, _ in self.replacements]
        if replaceable and not self.unreplaceable:
            action = f"Replace {_char_list(replaceable)} to send as GSM-7"
        elif self.unreplaceable and not replaceable:
            action = (
                f"Remove or reword {_char_list(self.unreplaceable)} (no GSM-7 lookalike) to send as GSM-7"
            )
        else:
            action = (
                f"Replace {_char_list(replaceable)} and remove {_char_list(self.unreplaceable)} "
                "(no GSM-7 lookalike) to send as GSM-7"
            )
        if self.saving_segments > 0:
            return f"{action}: {_segments(self.segments_if_replaced)} instead of {self.segments}."
        if self.saving_segments < 0:
            # Possible: "…" is one UCS-2 unit but three GSM-7 septets.
            return (
                f"Keep the current text: swapping {_char_list(replaceable or self.unreplaceable)} for GSM-7 "
                f"would need {_segments(self.segments_if_replaced)} instead of {self.segments}."
            )
        return f"{action}; it stays at {_segments(self.segments)} either way."


def segment_info(body: str) -> SegmentInfo:
    """Encoding, segment count and replacement advice for one message body."""
    if not isinstance(body, str):
        raise TypeError(f"body must be str, not {type(body).__name__}")
    ucs2_chars = tuple(_unique(char for char in body if not _is_gsm7_char(char)))
    encoding = GSM7 if not ucs2_chars else UCS2
    segments, length = _count(body, encoding)
    replacements = tuple((char, GSM7_LOOKALIKES[char]) for char in ucs2_chars if char in GSM7_LOOKALIKES)
    unreplaceable = tuple(char for char in ucs2_chars if char not in GSM7_LOOKALIKES)
    segments_if_replaced = segments if not ucs2_chars else _count(to_gsm7(body), GSM7)[0]
    return SegmentInfo(
        encoding=encoding,
        segments=segments,
        length=length,
        chars_per_segment=(SINGLE_SEGMENT if segments == 1 else CONCATENATED_SEGMENT)[encoding],
        ucs2_characters=ucs2_chars,
        replacements=replacements,
        unreplaceable=unreplaceable,
        segments_if_replaced=segments_if_replaced,
    )


def segment_count(body: str) -> int:
    """Just the number of segments Twilio bills for ``body``."""
    return segment_info(body).segments


def is_gsm7(body: str) -> bool:
    return all(_is_gsm7_char(char) for char in body)


def to_gsm7(body: str) -> str:
    """``body`` with each non-GSM-7 character swapped for its lookalike, or dropped if it has none."""
    return "".join(char if _is_gsm7_char(char) else GSM7_LOOKALIKES.get(char, "") for char in body)


# --- counting -------------------------------------------------------------------------


def _is_gsm7_char(char: str) -> bool:
    return char in GSM7_BASIC or char in GSM7_EXTENSION


def _count(body: str, encoding: str) -> tuple[int, int]:
    """(segments, length) of ``body`` in ``encoding``, filling segments unit by unit."""
    if encoding == GSM7:
        # Every GSM-7 character is a single code point, so each is its own unit.
        clusters: list[list[int]] = [[2 if char in GSM7_EXTENSION else 1] for char in body]
    else:
        clusters = [[_utf16_units(char) for char in cluster] for cluster in _clusters(body)]
    length = sum(sum(cluster) for cluster in clusters)
    if length <= SINGLE_SEGMENT[encoding]:
        return 1, length
    return _pack(clusters, CONCATENATED_SEGMENT[encoding]), length


def _pack(clusters: Sequence[Sequence[int]], capacity: int) -> int:
    """Greedy fill: a unit that does not fit in the current segment opens the next one."""
    segments, used = 1, 0
    for cluster in clusters:
        size = sum(cluster)
        # A cluster longer than a whole segment cannot stay together: split it between
        # code points (a code point, and so a surrogate pair, is still never split).
        units = cluster if size > capacity else [size]
        for unit in units:
            if used + unit > capacity:
                segments += 1
                used = 0
            used += unit
    return segments


def _utf16_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _clusters(body: str) -> list[str]:
    """Approximate user-perceived characters (Unicode grapheme clusters) of ``body``.

    Enough for segmenting: combining marks, variation selectors, emoji modifiers, tag
    characters and ZWJ sequences stay with their base, and regional indicators pair up
    into flags. (The standard library has no grapheme segmentation.)
    """
    clusters: list[str] = []
    join_next = False
    for char in body:
        if clusters and (join_next or _extends(char) or _completes_flag(clusters[-1], char)):
            clusters[-1] += char
        else:
            clusters.append(char)
        join_next = char == _ZWJ
    return clusters


def _extends(char: str) -> bool:
    code = ord(char)
    return (
        char == _ZWJ
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag characters (subdivision flags)
        or 0xE0100 <= code <= 0xE01EF  # variation selectors supplement
    )


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _completes_flag(previous: str, char: str) -> bool:
    return len(previous) == 1 and _is_regional_indicator(previous) and _is_regional_indicator(char)


# --- wording --------------------------------------------------------------------------


def _unique(chars: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(chars))


def _segments(n: int) -> str:
    return f"{n} segment" if n == 1 else f"{n} segments"


def _char_list(chars: Sequence[str], limit: int = 6) -> str:
    shown = [_display(char) for char in chars[:limit]]
    if len(chars) > limit:
        shown.append(f"{len(chars) - limit} more")
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def _display(char: str) -> str:
    """A character as a reader can recognise it; invisible ones by name."""
    if char.isprintable() and not char.isspace() and unicodedata.category(char)[0] not in "MC":
        return char
    name = unicodedata.name(char, "character").lower()
    return f"{name} (U+{ord(char):04X})"
