"""Phone-number facts: parsing, the country of a number, and the one masking style of the UI.

Everything that needs the country of a number (ingest's enrichment, the sender's plan and
prices, the sandbox's create checks) asks ``country_of``; everything that shows a number to a
person (tables, the Send page, warnings, error messages) masks it with ``mask_number`` /
``mask_text``. One rule each, so the same number reads the same on every page.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

__all__ = ["MASK", "country_of", "is_valid", "mask_number", "mask_text", "parse"]

MASK = "•"
_CC = {cc for cc in COUNTRY_CODE_TO_REGION_CODE if cc}
_NO_REGION = (None, "ZZ", "001")  # unknown, or a non-geographic calling code (+800, +882 …)


def parse(number: str) -> phonenumbers.PhoneNumber:
    """An E.164 number ('+' and digits) straight into a PhoneNumber, else ``phonenumbers.parse``.

    The fast path is about 10x quicker than ``phonenumbers.parse`` (the ingest looks up every
    distinct number of a 10M-message warehouse). Raises ``phonenumbers.NumberParseException``.
    """
    if number.startswith("+") and number[1:].isdigit() and 8 <= len(number) <= 16:
        digits = number[1:]
        for k in (1, 2, 3):
            cc = int(digits[:k])
            if cc in _CC:
                national = digits[k:]
                zeros = len(national) - len(national.lstrip("0"))
                return phonenumbers.PhoneNumber(
                    country_code=cc,
                    national_number=int(national or 0),
                    italian_leading_zero=zeros > 0 or None,
                    number_of_leading_zeros=zeros if zeros > 1 else None,
                )
    return phonenumbers.parse(number, None)


def country_of(number: str | phonenumbers.PhoneNumber) -> str | None:
    """ISO-2 country of a number (text or parsed); None without a parseable or geographic calling code.

    The region libphonenumber assigns to the number; for a number valid in no region (Twilio's
    test range +1 500 555 …, fictional +1 555 numbers) the main region of its calling code,
    which is how Twilio prices it. Whether Twilio would accept the number is ``is_valid``.
    """
    try:
        parsed = number if isinstance(number, phonenumbers.PhoneNumber) else parse(number)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    if region in _NO_REGION:
        region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    return None if region in _NO_REGION else region


def is_valid(number: str) -> bool:
    """True when libphonenumber knows the number as a valid number of some region."""
    try:
        return phonenumbers.is_valid_number(parse(number))
    except phonenumbers.NumberParseException:
        return False


def mask_number(number: Any) -> Any:
    """``+447700900123`` → ``+44 7•••• ••123``: country code, first digit and last three stay.

    Enough to tell numbers (and test phones) apart, not to dial them. Values that are not phone
    numbers (alphanumeric sender IDs, SIDs, None) come back unchanged; a digit string that
    phonenumbers cannot parse is still masked.
    """
    if not isinstance(number, str):
        return number
    raw = number.strip()
    digits = re.sub(r"\D", "", raw)
    if len(digits) < 6 or re.search(r"[A-Za-z]", raw):
        return number
    try:
        parsed = phonenumbers.parse(raw if raw.startswith("+") else "+" + digits, None)
        cc, national = str(parsed.country_code), str(parsed.national_number)
    except phonenumbers.NumberParseException:
        cc, national = "", digits
    if len(national) <= 4:
        body = MASK * len(national)
    else:
        body = national[0] + MASK * (len(national) - 4) + national[-3:]
    grouped = body[:5] + (" " + body[5:] if len(body) > 5 else "")
    return f"+{cc} {grouped}" if cc else grouped


_NUMBER_IN_TEXT = re.compile(r"\+?\d[\d \-().]{6,}\d")


def mask_text(text: Any) -> Any:
    """Mask every phone-number-looking run inside free text (reject lines, error messages)."""
    if not isinstance(text, str):
        return text
    return _NUMBER_IN_TEXT.sub(lambda m: str(mask_number(m.group(0))), text)
