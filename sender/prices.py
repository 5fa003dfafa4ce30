"""A small table of outbound prices, for the dry run's cost *estimate*.

USD, SMS per segment and voice per minute, in the range of Twilio's public price lists
(the same figures the sandbox's simulated world charges, so a rehearsal against it
matches its estimate). Real prices vary by carrier, sender type and date: after sending,
the warehouse's cost figures (from Twilio's ``price`` field) are the ones to trust. A
country not in the table is estimated at the default and flagged ``price_known = False``.
The sender does not import the sandbox: it is a test double, not a price source.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_SMS_PRICE_USD",
    "DEFAULT_VOICE_PRICE_PER_MINUTE_USD",
    "SMS_PRICE_USD",
    "VOICE_PRICE_PER_MINUTE_USD",
    "sms_price",
    "voice_price",
]

SMS_PRICE_USD: dict[str, float] = {
    "US": 0.0083,
    "GB": 0.0463,
    "BR": 0.0625,
    "IN": 0.0830,
    "ID": 0.4073,
    "MX": 0.0956,
    "DE": 0.0865,
    "FR": 0.0798,
    "NG": 0.2856,
    "PH": 0.2165,
    "CA": 0.0083,
    "ES": 0.0880,
    "IT": 0.0905,
    "AU": 0.0515,
    "TR": 0.0412,
    "EG": 0.2433,
    "PK": 0.2300,
    "BD": 0.3036,
    "VN": 0.0832,
    "TH": 0.0325,
    "CO": 0.0590,
    "AR": 0.0714,
    "PE": 0.0690,
    "CL": 0.0633,
    "ZA": 0.0370,
    "KE": 0.1880,
    "GH": 0.2350,
    "SA": 0.0900,
    "AE": 0.0565,
    "MY": 0.0850,
    "SG": 0.0492,
    "JP": 0.0784,
    "KR": 0.0425,
    "PL": 0.0450,
    "NL": 0.1140,
    "SE": 0.0765,
    "CH": 0.0670,
    "BE": 0.1050,
    "PT": 0.0410,
    "IE": 0.0750,
    "NZ": 0.1170,
    "RO": 0.0630,
    "UA": 0.0720,
    "MA": 0.1570,
    "IL": 0.1280,
}
VOICE_PRICE_PER_MINUTE_USD: dict[str, float] = {
    "US": 0.0140,
    "GB": 0.0158,
    "BR": 0.0340,
    "IN": 0.0409,
    "ID": 0.1030,
    "MX": 0.0305,
    "DE": 0.0290,
    "FR": 0.0250,
    "NG": 0.2140,
    "PH": 0.2000,
    "CA": 0.0140,
    "ES": 0.0250,
    "IT": 0.0270,
    "AU": 0.0240,
    "TR": 0.0650,
    "EG": 0.2450,
    "PK": 0.1500,
    "BD": 0.1000,
    "VN": 0.1150,
    "TH": 0.0640,
    "CO": 0.0400,
    "AR": 0.0440,
    "PE": 0.0440,
    "CL": 0.0350,
    "ZA": 0.0590,
    "KE": 0.1200,
    "GH": 0.2600,
    "SA": 0.1100,
    "AE": 0.1560,
    "MY": 0.0570,
    "SG": 0.0200,
    "JP": 0.0900,
    "KR": 0.0500,
    "PL": 0.0250,
    "NL": 0.0300,
    "SE": 0.0210,
    "CH": 0.0400,
    "BE": 0.0330,
    "PT": 0.0260,
    "IE": 0.0220,
    "NZ": 0.0350,
    "RO": 0.0400,
    "UA": 0.1500,
    "MA": 0.2500,
    "IL": 0.0400,
}
DEFAULT_SMS_PRICE_USD = 0.0800
DEFAULT_VOICE_PRICE_PER_MINUTE_USD = 0.1000


def sms_price(country: str | None) -> tuple[float, bool]:
    """(estimated USD per segment, whether the country is in the table)."""
    if country and country in SMS_PRICE_USD:
        return SMS_PRICE_USD[country], True
    return DEFAULT_SMS_PRICE_USD, False


def voice_price(country: str | None) -> tuple[float, bool]:
    """(estimated USD per minute of a call, whether the country is in the table)."""
    if country and country in VOICE_PRICE_PER_MINUTE_USD:
        return VOICE_PRICE_PER_MINUTE_USD[country], True
    return DEFAULT_VOICE_PRICE_PER_MINUTE_USD, False
