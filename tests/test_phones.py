"""Phone-number facts: one country rule and one masking style for every part."""

from __future__ import annotations

import pytest

from switchboard.core import phones


@pytest.mark.parametrize(
    ("number", "country"),
    [
        ("+447700900123", "GB"),
        ("+201001234567", "EG"),
        ("+14155550123", "US"),
        ("+15555550100", "US"),  # valid in no region: the calling code's main region, as Twilio prices it
        ("+15005550006", "US"),  # Twilio's test range
        ("+16135550123", "CA"),  # a real Canadian area code under +1
        ("+383441234567", "XK"),
        ("+80012345678", None),  # non-geographic calling code
        ("+999123", None),
        ("not a number", None),
    ],
)
def test_country_of_is_one_rule(number: str, country: str | None) -> None:
    assert phones.country_of(number) == country


def test_every_part_uses_the_core_rule() -> None:
    from switchboard.ingest import enrich
    from switchboard.sender import campaign

    assert campaign.country_of is phones.country_of
    numbers = ["+447700900123", "+15005550006", "+999123", "+16135550123"]
    got = enrich.lookup_numbers(numbers).set_index("number")["country"]
    assert {n: (None if got[n] is None or got[n] != got[n] else got[n]) for n in numbers} == {
        n: phones.country_of(n) for n in numbers
    }


def test_validity_is_separate_from_country() -> None:
    assert phones.is_valid("+201001234567") and not phones.is_valid("+15555550100")
    assert phones.country_of("+15555550100") == "US"  # invalid, yet it has a country (its calling code)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+447700900123", "+44 7•••• ••123"),
        ("+15005550010", "+1 5•••• ••010"),
        ("MyBrand", "MyBrand"),
        (None, None),
    ],
)
def test_one_masking_style_for_ui_and_sender(raw: str | None, masked: str | None) -> None:
    from switchboard.dashboard import components
    from switchboard.sender import planning

    assert phones.mask_number(raw) == masked
    assert components.mask_number is phones.mask_number and planning.mask_number is phones.mask_number


def test_mask_text_masks_numbers_inside_messages() -> None:
    text = phones.mask_text("line 3 (+447700900123) is outside the allow-list")
    assert "+447700900123" not in text and "+44 7•••• ••123" in text
