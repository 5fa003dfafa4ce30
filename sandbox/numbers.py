"""Valid phone numbers per country, generated in bulk.

Each country gets a small *plan*: national prefixes (with the carrier phonenumbers
names for them where its prefix data has one), the national number length, and a
share per prefix. Numbers are drawn by filling the digits after a prefix at random
(numpy), then every *distinct* number is validated once with phonenumbers and the
invalid ones are drawn again.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np
import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.carrierdata import CARRIER_DATA

from switchboard.sandbox.catalog import CARRIER_RANK, CARRIER_SHARES, NANP_AREA_CODES, NANP_CARRIERS

_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


@dataclass(frozen=True)
class Prefix:
    national: str  # national digits every number starts with
    length: int  # national number length
    carrier: str | None
    share: float


def _example(region: str, kind: int) -> phonenumbers.PhoneNumber:
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        raise ValueError(f"phonenumbers has no example number for {region}")
    return example


def _is_valid(cc: int, national: int, region: str) -> bool:
    n = phonenumbers.PhoneNumber(country_code=cc, national_number=national)
    return phonenumbers.is_valid_number_for_region(n, region)


def _prefix_ok(cc: int, prefix: str, length: int, region: str, rng: np.random.Generator, mobile: bool) -> bool:
    free = length - len(prefix)
    if free < 3:
        return False
    for _ in range(8):
        n = int(prefix + str(int(rng.integers(0, 10**free))).zfill(free))
        num = phonenumbers.PhoneNumber(country_code=cc, national_number=n)
        if phonenumbers.is_valid_number_for_region(num, region) and (
            not mobile or phonenumbers.number_type(num) in _MOBILE_TYPES
        ):
            return True
    return False


@functools.lru_cache(maxsize=1)
def _carrier_keys() -> dict[str, list[str]]:
    """phonenumbers' carrier prefixes grouped by calling code (1 to 3 digits), in sorted order."""
    out: dict[str, list[str]] = {}
    codes = {str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    for key in sorted(CARRIER_DATA):
        for n in (1, 2, 3):
            if key[:n] in codes:
                out.setdefault(key[:n], []).append(key)
                break
    return out


@functools.cache
def mobile_plan(region: str) -> tuple[Prefix, ...]:
    """Prefixes for mobile numbers of ``region``; deterministic (independent of the world seed)."""
    rng = np.random.default_rng(zlib.crc32(region.encode()))
    cc = phonenumbers.country_code_for_region(region)
    example = _example(region, PhoneNumberType.MOBILE)
    length = len(str(example.national_number))
    if region in NANP_AREA_CODES:
        areas = [a for a in NANP_AREA_CODES[region] if _prefix_ok(cc, a + "2", length, region, rng, False)]
        out = []
        for i, area in enumerate(areas):
            # NANP exchanges start 2-9; the carrier is a plausible label (phonenumbers has none here).
            for first in "2345678":
                out.append(Prefix(area + first, length, NANP_CARRIERS[(i + int(first)) % 3], 1.0))
        total = len(out)
        return tuple(Prefix(p.national, p.length, p.carrier, 1.0 / total) for p in out)
    by_carrier: dict[str, list[str]] = {}
    cc_s = str(cc)
    for key in _carrier_keys().get(cc_s, ()):
        name = CARRIER_DATA[key].get("en")
        national = key[len(cc_s) :]
        if not name or not national or len(national) > length - 3:
            continue
        if len(by_carrier.get(name, ())) >= 6:
            continue
        if _prefix_ok(cc, national, length, region, rng, True):
            by_carrier.setdefault(name, []).append(national)
    if by_carrier:
        ranked = [c for c in CARRIER_RANK.get(region, ()) if c in by_carrier]
        ranked += sorted((c for c in by_carrier if c not in ranked), key=lambda c: -len(by_carrier[c]))
        ranked = ranked[: len(CARRIER_SHARES)]
        shares = np.array(CARRIER_SHARES[: len(ranked)])
        shares = shares / shares.sum()
        out = []
        for carrier, share in zip(ranked, shares):
            prefixes = by_carrier[carrier]
            out += [Prefix(p, length, carrier, float(share) / len(prefixes)) for p in prefixes]
        return tuple(out)
    # No carrier data: vary the example number's trailing digits.
    digits = str(example.national_number)
    keep = max(1, length - 6)
    return (Prefix(digits[:keep], length, None, 1.0),)


@functools.cache
def landline_plan(region: str) -> tuple[Prefix, ...]:
    example = _example(region, PhoneNumberType.FIXED_LINE)
    digits = str(example.national_number)
    return (Prefix(digits[: max(1, len(digits) - 5)], len(digits), None, 1.0),)


def draw_numbers(
    region: str, n: int, rng: np.random.Generator, landline: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` valid E.164 numbers of ``region`` (object array) and the index of their prefix in the plan."""
    plan = landline_plan(region) if landline else mobile_plan(region)
    cc = phonenumbers.country_code_for_region(region)
    shares = np.array([p.share for p in plan])
    which = rng.choice(len(plan), size=n, p=shares / shares.sum())
    base = np.array([int(p.national) * 10 ** (p.length - len(p.national)) for p in plan], dtype=np.int64)
    span = np.array([10 ** (p.length - len(p.national)) for p in plan], dtype=np.int64)
    national = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    checked: dict[int, bool] = {}
    for _round in range(30):
        if todo.size == 0:
            break
        w = which[todo]
        national[todo] = base[w] + (rng.random(todo.size) * span[w]).astype(np.int64)
        uniq = np.unique(national[todo])
        for value in uniq.tolist():
            if value not in checked:
                checked[value] = _is_valid(cc, value, region)
        ok = np.fromiter((checked[v] for v in national[todo].tolist()), dtype=bool, count=todo.size)
        todo = todo[~ok]
    if todo.size:  # give up on the stubborn ones: reuse a valid number of the same prefix
        good = np.setdiff1d(np.arange(n), todo)
        donor = good[rng.integers(0, good.size, todo.size)]
        national[todo] = national[donor]
        which[todo] = which[donor]
    prefix = f"+{cc}"
    numbers = np.array([prefix + str(v) for v in national.tolist()], dtype=object)
    return numbers, which
