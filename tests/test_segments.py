"""Segment counting as Twilio bills it, and the GSM-7 replacement advice."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.core.segments import (
    GSM7,
    GSM7_BASIC,
    GSM7_EXTENSION,
    GSM7_LOOKALIKES,
    UCS2,
    is_gsm7,
    segment_count,
    segment_info,
    to_gsm7,
)

CYRILLIC = "ж"  # one UTF-16 unit, not in GSM-7
EMOJI = "😀"  # U+1F600: a surrogate pair, two UTF-16 units


# --- character sets --------------------------------------------------------------------


def test_default_alphabet_is_the_full_3gpp_table_without_escape():
    assert len(GSM7_BASIC) == 127
    assert "\x1b" not in GSM7_BASIC
    for char in "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà \n\r!\"#%&'()*+,-./:;<=>?":
        info = segment_info(char)
        assert (info.encoding, info.length) == (GSM7, 1), repr(char)


def test_extension_characters_cost_two_septets_each():
    assert GSM7_EXTENSION == frozenset("^{}\\[~]|€\f")
    info = segment_info("^{}\\[~]|€\f")
    assert info.encoding == GSM7
    assert info.length == 20


@pytest.mark.parametrize("char", ["ç", "`", "á", "’", "\t", "\u00a0", CYRILLIC, EMOJI])
def test_characters_outside_gsm7_force_ucs2(char):
    info = segment_info("Hello " + char)
    assert info.encoding == UCS2
    assert info.ucs2_characters == (char,)


def test_empty_body_is_one_gsm7_segment():
    info = segment_info("")
    assert (info.encoding, info.segments, info.length) == (GSM7, 1, 0)


# --- GSM-7 boundaries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("septets", "segments", "per_segment"),
    [
        (1, 1, 160),
        (160, 1, 160),
        (161, 2, 153),
        (305, 2, 153),
        (306, 2, 153),
        (307, 3, 153),
        (459, 3, 153),
        (460, 4, 153),
    ],
)
def test_gsm7_segment_boundaries(septets, segments, per_segment):
    info = segment_info("a" * septets)
    assert (info.encoding, info.segments, info.length, info.chars_per_segment) == (
        GSM7,
        segments,
        septets,
        per_segment,
    )


def test_extension_character_at_the_single_segment_limit():
    assert segment_count("a" * 158 + "€") == 1  # 160 septets
    assert segment_count("a" * 159 + "€") == 2  # 161 septets


def test_escape_pair_is_never_split_across_segments():
    # 152 plain septets leave one free septet: the 2-septet "€" must open segment 2.
    # 306 septets would fit in 2 segments by division; walking needs 3.
    body = "a" * 152 + "€" + "a" * 152
    info = segment_info(body)
    assert info.length == 306
    assert info.segments == 3


def test_escape_pair_that_fits_exactly_fills_the_segment():
    body = "a" * 151 + "€" + "a" * 153  # 153 + 153 septets
    assert segment_info(body).length == 306
    assert segment_count(body) == 2


def test_twilio_calculator_gsm7_examples():
    # Twilio's message-segment-calculator test data: "{" then digits.
    digits = "".join(str(i % 10) for i in range(2, 200))
    one = "{" + digits[:158]
    two = "{" + digits[:159]
    assert (segment_info(one).encoding, segment_info(one).segments, segment_info(one).length) == (
        GSM7,
        1,
        160,
    )
    assert (segment_info(two).encoding, segment_info(two).segments, segment_info(two).length) == (
        GSM7,
        2,
        161,
    )


# --- UCS-2 boundaries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("units", "segments", "per_segment"),
    [(70, 1, 70), (71, 2, 67), (134, 2, 67), (135, 3, 67), (201, 3, 67), (202, 4, 67)],
)
def test_ucs2_segment_boundaries(units, segments, per_segment):
    info = segment_info(CYRILLIC * units)
    assert (info.encoding, info.segments, info.length, info.chars_per_segment) == (
        UCS2,
        segments,
        units,
        per_segment,
    )


def test_emoji_count_two_utf16_units():
    assert segment_info(EMOJI * 35).length == 70
    assert segment_count(EMOJI * 35) == 1
    assert segment_count(EMOJI * 36) == 2


def test_surrogate_pair_is_never_split_at_the_67_boundary():
    # 66 units leave one free unit: the emoji (2 units) must open segment 2.
    body = CYRILLIC * 66 + EMOJI + CYRILLIC * 66
    info = segment_info(body)
    assert info.length == 134  # exactly 2 x 67 by division...
    assert info.segments == 3  # ...but 3 when pairs stay whole


def test_twilio_calculator_ucs2_examples():
    digits = "".join(str(i % 10) for i in range(2, 200))
    one = "😜" + digits[:68]
    two = "😜" + digits[:69]
    assert (segment_info(one).encoding, segment_info(one).segments) == (UCS2, 1)
    assert (segment_info(two).encoding, segment_info(two).segments) == (UCS2, 2)


def test_emoji_with_modifier_stays_in_one_segment():
    thumbs = "👍🏽"  # thumbs up + skin tone: 4 UTF-16 units, one character on screen
    body = CYRILLIC * 65 + thumbs + CYRILLIC * 64
    info = segment_info(body)
    assert info.length == 133
    assert info.segments == 3  # split between the two code points it would need only 2


def test_cluster_longer_than_a_segment_is_split_between_code_points():
    zalgo = "e" + "\u0301" * 100  # 101 units in one on-screen character
    assert segment_count(zalgo) == 2


# --- advice ----------------------------------------------------------------------------


def test_ucs2_characters_are_distinct_in_order_of_appearance():
    info = segment_info("a’b—c’😀—")
    assert info.ucs2_characters == ("’", "—", "😀")
    assert info.replacements == (("’", "'"), ("—", "-"))
    assert info.unreplaceable == ("😀",)


def test_smart_quote_and_dash_cost_a_segment():
    body = "Your reset link is ready — it’s valid for 15 minutes. " + "x" * 20
    info = segment_info(body)
    assert (info.encoding, info.segments) == (UCS2, 2)
    assert info.segments_if_replaced == 1
    assert info.saving_segments == 1
    assert info.suggestion() == "Replace — and ’ to send as GSM-7: 1 segment instead of 2."
    assert info.advice == info.suggestion()


def test_one_apostrophe_triples_a_long_message():
    info = segment_info("x" * 150 + "’")
    assert (info.segments, info.segments_if_replaced, info.saving_segments) == (3, 1, 2)
    assert info.suggestion() == "Replace ’ to send as GSM-7: 1 segment instead of 3."


def test_unreplaceable_characters_are_dropped_for_the_estimate():
    info = segment_info("x" * 100 + EMOJI)
    assert (info.segments, info.segments_if_replaced) == (2, 1)
    assert info.unreplaceable == (EMOJI,)
    assert info.replacements == ()
    assert (
        info.suggestion()
        == "Remove or reword 😀 (no GSM-7 lookalike) to send as GSM-7: 1 segment instead of 2."
    )


def test_mixed_advice_names_both_kinds():
    info = segment_info("Don’t forget " + EMOJI + " " + "x" * 70)
    assert info.suggestion() == (
        "Replace ’ and remove 😀 (no GSM-7 lookalike) to send as GSM-7: 1 segment instead of 2."
    )


def test_advice_when_replacing_saves_nothing():
    info = segment_info("Hi ’there’")
    assert info.saving_segments == 0
    assert info.suggestion() == "Replace ’ to send as GSM-7; it stays at 1 segment either way."


def test_invisible_characters_are_named_in_advice():
    info = segment_info("Hi\u00a0there")
    assert "no-break space (U+00A0)" in info.suggestion()


def test_ellipsis_expands_to_three_septets():
    info = segment_info("x" * 158 + "…")
    assert (info.encoding, info.segments) == (UCS2, 3)
    assert info.segments_if_replaced == 2  # 161 septets once "…" becomes "..."


def test_replacement_that_costs_more_says_keep_it():
    info = segment_info("…" * 134)  # 134 UCS-2 units (2 segments), 402 GSM-7 septets (3)
    assert info.saving_segments == -1
    assert info.suggestion().startswith("Keep the current text")


def test_gsm7_body_gets_no_replacement_advice():
    info = segment_info("Your code is 123456")
    assert (info.ucs2_characters, info.replacements, info.unreplaceable) == ((), (), ())
    assert info.segments_if_replaced == info.segments
    assert info.saving_segments == 0
    assert info.suggestion() == "Already GSM-7: 1 segment."


def test_lookalike_map_turns_ucs2_into_gsm7():
    assert all(is_gsm7(value) for value in GSM7_LOOKALIKES.values())
    assert not any(is_gsm7(key) for key in GSM7_LOOKALIKES)
    assert to_gsm7("“Hi” – it’s…😀\u00a0ok") == '"Hi" - it\'s... ok'


def test_segment_info_is_frozen():
    info = segment_info("hello")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.segments = 5  # type: ignore[misc]


def test_non_string_body_is_rejected():
    with pytest.raises(TypeError):
        segment_info(None)  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------

GSM7_CHARS = sorted(GSM7_BASIC | GSM7_EXTENSION)
gsm7_text = st.text(alphabet=st.sampled_from(GSM7_CHARS), max_size=500)
mixed_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(GSM7_CHARS),
        st.sampled_from(sorted(GSM7_LOOKALIKES)),
        st.sampled_from(["ж", "中", "ç", EMOJI, "😜", "🏽", "\u200d", "\u0301", "\ufe0f", "🇫", "🇷", "…"]),
        st.characters(codec="utf-8"),
    ),
    max_size=400,
)


@settings(max_examples=300)
@given(gsm7_text)
def test_gsm7_body_is_never_reported_as_ucs2(body):
    info = segment_info(body)
    assert info.encoding == GSM7
    assert info.ucs2_characters == ()
    assert info.length == len(body) + sum(char in GSM7_EXTENSION for char in body)


@settings(max_examples=300)
@given(mixed_text, mixed_text)
def test_appending_never_reduces_segments(body, suffix):
    assert segment_count(body + suffix) >= segment_count(body)


@settings(max_examples=300)
@given(mixed_text)
def test_segments_bracket_the_length(body):
    info = segment_info(body)
    single = 160 if info.encoding == GSM7 else 70
    per_segment = 153 if info.encoding == GSM7 else 67
    assert (info.segments == 1) == (info.length <= single)
    if info.segments > 1:
        assert info.segments >= math.ceil(info.length / per_segment)
        assert info.chars_per_segment == per_segment
    if info.encoding == UCS2:
        assert info.length == len(body.encode("utf-16-le")) // 2


@settings(max_examples=300)
@given(mixed_text)
def test_replacement_estimate_is_a_gsm7_count(body):
    info = segment_info(body)
    assert info.segments_if_replaced == segment_count(to_gsm7(body))
    assert segment_info(to_gsm7(body)).encoding == GSM7
    assert set(info.ucs2_characters) == {c for c, _ in info.replacements} | set(info.unreplaceable)
