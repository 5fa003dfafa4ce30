"""Checks on the numbers of a create request: Twilio's test ("magic") numbers, and the
country of a To number (the one rule in ``switchboard.core.phones``)."""

from __future__ import annotations

from switchboard.core import phones

MAGIC_TO_SMS = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, ("The 'To' phone number: +15005550002, is not currently reachable "
                             "via SMS.")),
    "+15005550003": (21408, ("Permission to send an SMS has not been enabled for the region indicated by the "
                             "'To' number: +15005550003.")),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number +15005550009 is not a valid mobile number"),
}
MAGIC_FROM_SMS = {
    "+15005550001": (21212, ("The 'From' number +15005550001 is not a valid phone number, shortcode, or "
                             "alphanumeric sender ID.")),
    "+15005550007": (21606, ("The From phone number +15005550007 is not a valid, SMS-capable inbound phone "
                             "number or short code for your account.")),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum number of queued messages"),
}
MAGIC_TO_CALL = {
    "+15005550001": (21217, "Phone number does not appear to be valid"),
    "+15005550002": (21214, "'To' phone number cannot be reached"),
    "+15005550003": (21215, ("Account not authorized to call +15005550003. Perhaps you need to enable some "
                             "international permissions.")),
}
MAGIC_FROM_CALL = {
    "+15005550001": (21212, "The 'From' number +15005550001 is not a valid phone number."),
    "+15005550007": (21210, ("The source phone number provided, +15005550007, is not yet verified for your "
                             "account.")),
}


def country_of(number: str) -> str | None:
    """ISO-2 country of a To number Twilio would accept, "" for a valid number outside any
    country (+800 …), None when it is not a valid number (the create answers 21211 / 21217)."""
    if not phones.is_valid(number):
        return None
    return phones.country_of(number) or ""
