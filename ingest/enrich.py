"""Enrichment: countries, carriers, error catalogue and prices in USD.

Phone lookups are done once per *distinct* number (phonenumbers is pure Python,
about 20 µs a call), never per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import pandas as pd
import phonenumbers
import pycountry
from phonenumbers.carrierdata import CARRIER_DATA, CARRIER_LONGEST_PREFIX
from phonenumbers.prefix import _prefix_description_for_number as _carrier_prefix

from switchboard.core import phones
from switchboard.core.resources import data_file

# Static rates: Twilio prices most accounts in USD; others are converted with these.
FX_USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067, "BRL": 0.18, "INR": 0.012, "AUD": 0.66, "CAD": 0.73}


REGIONS_CSV = "country_regions.csv"  # in the packaged switchboard.data (core.resources)


@lru_cache(maxsize=1)
def country_regions() -> dict[str, tuple[str, str]]:
    """ISO-2 -> (UN M49 continent, UN M49 sub-region), from data/country_regions.csv."""
    with data_file(REGIONS_CSV).open("rb") as handle:
        frame = pd.read_csv(handle, comment="#", keep_default_na=False, dtype=str)
    return {r.iso2: (r.continent, r.subregion) for r in frame.itertuples()}


def countries_frame() -> pd.DataFrame:
    """iso2, iso3, name, region (M49 continent), calling_code, subregion for every ISO 3166 country.

    Kosovo (XK) is added: phonenumbers resolves +383 numbers to it, pycountry does not list it.
    """
    regions = country_regions()
    rows = []
    entries = [(c.alpha_2, c.alpha_3, getattr(c, "common_name", None) or c.name) for c in pycountry.countries]
    entries.append(("XK", "XKX", "Kosovo"))
    for iso2, iso3, name in entries:
        code = phonenumbers.country_code_for_region(iso2) or None
        continent, subregion = regions.get(iso2, (None, None))
        rows.append(
            {
                "iso2": iso2,
                "iso3": iso3,
                "name": name,
                "region": continent,
                "calling_code": code,
                "subregion": subregion,
            }
        )
    return pd.DataFrame(rows)


def error_codes_frame() -> pd.DataFrame:
    from switchboard.core.error_catalog import load_error_catalog

    return load_error_catalog()


def fx_frame() -> pd.DataFrame:
    return pd.DataFrame({"currency": list(FX_USD_PER_UNIT), "usd_per_unit": list(FX_USD_PER_UNIT.values())})


def lookup_numbers(numbers: Iterable[str]) -> pd.DataFrame:
    """country (ISO-2) and approximate original carrier for each distinct E.164 number.

    The carrier is phonenumbers' prefix data for the number (what its range was assigned
    to); ported numbers differ, hence "approximate". Landline ranges have no carrier.
    """
    rows: list[tuple[str, str | None, str | None]] = []
    for number in {n for n in numbers if n}:
        try:
            parsed = phones.parse(number)
        except phonenumbers.NumberParseException:
            rows.append((number, None, None))
            continue
        name = _carrier_prefix(CARRIER_DATA, CARRIER_LONGEST_PREFIX, parsed, "en") or None
        rows.append((number, phones.country_of(parsed), name))
    return pd.DataFrame(rows, columns=["number", "country", "carrier"])
