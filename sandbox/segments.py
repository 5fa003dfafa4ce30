"""Fallback segment counter, used only when ``analytics.templates_segments`` is unavailable.

GSM-7 (3GPP TS 23.038 basic table; extension characters cost two septets) when every
character fits, else UCS-2 counted in UTF-16 code units. 160/153 septets and 70/67 units
per single/concatenated segment; an escape pair or surrogate pair is never split.
"""

from __future__ import annotations

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")


def _pack(units: list[int], single: int, multi: int) -> int:
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for u in units:
        if used + u > multi:
            segments, used = segments + 1, 0
        used += u
    return segments


def segment_info(body: str) -> tuple[str, int]:
    """(encoding, segments) of ``body`` as Twilio bills it."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in body):
        return "GSM-7", _pack([2 if c in GSM7_EXTENSION else 1 for c in body], 160, 153)
    return "UCS-2", _pack([2 if ord(c) > 0xFFFF else 1 for c in body], 70, 67)
