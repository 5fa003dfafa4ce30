"""Enrichment: countries, carriers, error catalogue and prices in USD.

Phone lookups are done once per *distinct* number (phonenumbers is pure Python,
about 20 µs a call), never per row.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import phonenumbers
import pycountry
from phonenumbers import carrier as pn_carrier

# Static rates: Twilio prices most accounts in USD; others are converted with these.
FX_USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067, "BRL": 0.18, "INR": 0.012, "AUD": 0.66, "CAD": 0.73}


def countries_frame() -> pd.DataFrame:
    """iso2, iso3, name, region, calling_code for every ISO 3166 country."""
    rows = []
    for c in pycountry.countries:
        code = phonenumbers.country_code_for_region(c.alpha_2) or None
        rows.append(
            {
                "iso2": c.alpha_2,
                "iso3": c.alpha_3,
                "name": getattr(c, "common_name", None) or c.name,
                "region": None,
                "calling_code": code,
            }
        )
    return pd.DataFrame(rows)


def error_codes_frame() -> pd.DataFrame:
    from ingest.error_catalog import load_error_catalog

    return load_error_catalog()


def fx_frame() -> pd.DataFrame:
    return pd.DataFrame({"currency": list(FX_USD_PER_UNIT), "usd_per_unit": list(FX_USD_PER_UNIT.values())})


def lookup_numbers(numbers: Iterable[str]) -> pd.DataFrame:
    """country (ISO-2) and approximate original carrier for each distinct E.164 number."""
    rows = []
    for number in set(n for n in numbers if n):
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            rows.append({"number": number, "country": None, "carrier": None})
            continue
        region = phonenumbers.region_code_for_number(parsed)
        name = pn_carrier.name_for_number(parsed, "en") or None
        rows.append({"number": number, "country": region if region not in (None, "ZZ", "001") else None, "carrier": name})
    return pd.DataFrame(rows, columns=["number", "country", "carrier"])
