"""SMS pumping in the sandbox (issue 17): one-time codes requested through our own sign-up and password-reset
forms to number ranges a fraudster is paid for (Twilio's "artificially inflated traffic").

What pumped traffic looks like, here as in the wild:

* **concentrated prefixes**: a few number ranges of one country, each inside one of its carriers' mobile
  prefixes (``number_ranges``; every number is valid for phonenumbers);
* **sequential numbers**: a script walks each range upwards, mostly one number at a time, sometimes resending
  to the same number, sometimes skipping a few (``sequential_numbers``);
* **new member ids**: every pumped number signs up as a member never seen before;
* **no conversions**: the codes are delivered (the fraudster's numbers exist: that is how they are paid) and
  never used; no voice fallback follows (nothing failed) and nobody replies.

The history's episodes (``Scenario.pumping``, one by default: Nigeria, from 36 hours before the end for 30 hours,
0.8 % of the history's messages: still in the last day's window when the history ends, so ``switchboard demo``
opens its alert) are drawn by ``world._add_pumping`` from generators of their own (seed, 17, episode),
then merged into the messages in time order (``merge``), so the rest of the world draws exactly what it drew
before; the sids of messages after the episode move (a sid is its row). Live traffic pumps with
``switchboard sandbox --live-rate N --pumping COUNTRY:MESSAGES_PER_HOUR[:AFTER_SECONDS]`` (sandbox/live.py).
Ground truth: ``ground_truth["pumping"]`` (and ``["live"]["pumping"]``): country, prefixes, start, end, volume.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import phonenumbers

from switchboard.sandbox.numbers import mobile_plan
from switchboard.sandbox.sids import sid_series

MIN_MESSAGES = 100  # an episode smaller than this is not drawn (worlds under 12,500 messages have none)
PURPOSES = ("verification", "password_reset")  # the forms abused: sign-up codes, password resets
PURPOSE_SHARES = (0.7, 0.3)
STEPS = np.array([0, 1, 2, 3, 7, 13])  # how far the script moves between two codes
STEP_P = np.array([0.15, 0.6, 0.1, 0.05, 0.05, 0.05])


def _valid(cc: int, national: int, region: str) -> bool:
    return phonenumbers.is_valid_number_for_region(
        phonenumbers.PhoneNumber(country_code=cc, national_number=national), region)


def number_ranges(country: str, k: int, per_range: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """``k`` number ranges of ``country`` as (E.164 prefix, free digits): each inside a different mobile carrier
    prefix of the country where it has enough, with room for ``per_range`` codes walked sequentially."""
    plan = mobile_plan(country)
    cc = phonenumbers.country_code_for_region(country)
    picks = rng.choice(len(plan), size=k, replace=len(plan) < k)
    span = per_range * float(STEPS @ STEP_P) * 2 + 100
    out: list[tuple[str, int]] = []
    for i in picks.tolist():
        p = plan[i]
        room = p.length - len(p.national)
        free = min(room, max(4, math.ceil(math.log10(span))))
        for _ in range(20):
            head = p.national + "".join(str(d) for d in rng.integers(0, 10, size=room - free))
            if _valid(cc, int(head + "0" * free), country) and _valid(cc, int(head + "9" * free), country):
                break
        out.append((f"+{cc}{head}", free))
    return out


class Walker:
    """A pumping script walking number ranges upwards: each code goes to a range at random, one number on
    from the last code sent there (``STEPS``: mostly the next number, sometimes the same one again or a few
    further); a number phonenumbers rejects is skipped. Keeps its place between calls (live traffic)."""

    def __init__(self, country: str, ranges: list[tuple[str, int]], rng: np.random.Generator):
        self.country, self.ranges = country, ranges
        self.cc = phonenumbers.country_code_for_region(country)
        self.cursor = [int(rng.integers(0, max(1, 10 ** free // 4))) for _, free in ranges]

    def take(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(number, range index) of the next ``n`` codes, in the order they are sent."""
        which = rng.integers(0, len(self.ranges), size=n)
        steps = rng.choice(STEPS, size=n, p=STEP_P)
        numbers = np.empty(n, dtype=object)
        skip = 1 + len(str(self.cc))
        for j in range(n):
            r = int(which[j])
            prefix, free = self.ranges[r]
            self.cursor[r] = (self.cursor[r] + int(steps[j])) % 10 ** free
            for _ in range(50):
                number = prefix + str(self.cursor[r]).zfill(free)
                if _valid(self.cc, int(number[skip:]), self.country):
                    break
                self.cursor[r] = (self.cursor[r] + 1) % 10 ** free
            numbers[j] = number
        return numbers, which


def sequential_numbers(country: str, ranges: list[tuple[str, int]], n: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(number, range index) of ``n`` codes walked by a new ``Walker``."""
    return Walker(country, ranges, rng).take(n, rng)


def episode_window(t0: int, t1: int, days_before_end: float, hours: float) -> tuple[int, int]:
    """[start, end) in epoch seconds of an episode, on a whole hour, inside the history [t0, t1)."""
    length = int(min(hours * 3600, t1 - t0 - 2))
    start = int(t1 - days_before_end * 86400) // 3600 * 3600
    start = min(max(start, t0), t1 - 2 - length)
    return start, start + length


def merge(msgs: pd.DataFrame, extra: pd.DataFrame, texts: list[str], salt: int
          ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``msgs`` and the pumped rows ``extra`` (same columns; ``body_key`` into ``texts``) in one frame in time
    order, with new sids (a sid is its row); returns it, each old row's new row and each extra row's."""
    from switchboard.sandbox.replies import _merge_categorical

    bodies = list(msgs.attrs["bodies"])
    extra = extra.copy()
    extra["body_key"] = extra["body_key"].to_numpy() + len(bodies)
    bodies += texts
    n_old = len(msgs)
    created = np.concatenate([msgs["date_created"].to_numpy(), extra["date_created"].to_numpy()])
    order = np.argsort(created, kind="stable")
    new_row = np.empty(order.size, dtype=np.int64)
    new_row[order] = np.arange(order.size)
    cols = {}
    for c in msgs.columns:
        if c == "sid":
            continue
        a = msgs[c]
        if isinstance(a.dtype, pd.CategoricalDtype):
            cols[c] = _merge_categorical(a, extra[c] if c in extra.columns else None, len(extra), order)
        else:
            vals = a.to_numpy()
            if c == "reply_to":  # a row index: where the answered message went
                vals = np.where(vals >= 0, new_row[np.maximum(vals, 0)], -1)
            fill = extra[c].to_numpy() if c in extra.columns else np.full(len(extra), -1 if c == "reply_to" else 0)
            cols[c] = np.concatenate([vals, fill.astype(a.dtype)])[order]
    merged = pd.DataFrame(cols)
    merged.insert(0, "sid", sid_series("SM", np.arange(len(merged), dtype=np.int64), salt))
    merged.attrs["bodies"] = bodies
    return merged, new_row[:n_old], new_row[n_old:]
