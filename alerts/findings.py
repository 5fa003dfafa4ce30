"""What one evaluation finds: a ``Finding`` per incident cell, with its numbers and its plain sentence."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode


@dataclass(frozen=True)
class Finding:
    rule: str
    kind: str
    severity: str
    country_iso2: str | None
    country_name: str | None
    carrier: str | None = None
    template_id: str | None = None
    error_code: int | None = None
    prefix: str | None = None
    cells: dict[str, Any] = field(default_factory=dict)
    metric: str = ""
    baseline_value: float = math.nan
    recent_value: float = math.nan
    impact: float = 0.0
    p_value: float = math.nan
    q_value: float = math.nan
    sentence: str = ""
    what_to_do: str | None = None
    link: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    since: datetime | None = None

    @property
    def alert_id(self) -> str:
        """Stable across runs: the rule and the cell (what the alert is about, not its numbers)."""
        parts = [self.rule, self.country_iso2 or "*", self.carrier or "*", self.template_id or "*",
                 "*" if self.error_code is None else str(self.error_code), self.prefix or "*"]
        extra = [f"{k}={v}" for k, v in sorted(self.cells.items())
                 if k not in ("country", "carrier", "template", "error_code", "prefix")]
        return "|".join(parts + extra)

    def row(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id, "rule": self.rule, "kind": self.kind, "severity": self.severity,
            "country_iso2": self.country_iso2, "country_name": self.country_name, "carrier": self.carrier,
            "template_id": self.template_id, "error_code": self.error_code, "prefix": self.prefix,
            "cells": json.dumps(self.cells, sort_keys=True, default=str), "metric": self.metric,
            "baseline_value": _num(self.baseline_value), "recent_value": _num(self.recent_value),
            "impact": _num(self.impact), "p_value": _num(self.p_value), "q_value": _num(self.q_value),
            "sentence": self.sentence, "what_to_do": self.what_to_do, "link": self.link,
            "evidence": json.dumps(self.evidence, sort_keys=True, default=str), "since": self.since,
        }


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def link(page: str, *, country: str | None = None, carrier: str | None = None, template: str | None = None,
         start: datetime | None = None, end: datetime | None = None) -> str:
    """The dashboard's filtered view as a path + query string (the sidebar keeps its filters in the URL, a
    country by its name as the multiselect shows it)."""
    params: list[tuple[str, str]] = []
    if country:
        params.append(("country", country))
    if template and template != "(unknown)":
        params.append(("template", template))
    if start and end:
        params += [("dates", f"{start:%Y-%m-%d}"), ("dates", f"{end:%Y-%m-%d}")]
    return f"/{page}" + (f"?{urlencode(params)}" if params else "")


def pct(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.0%}" if abs(x) >= 0.1 or x == 0 else f"{x:.1%}"


def about(x: float) -> str:
    """Two significant figures: 1,937 -> 1,900."""
    if x is None or not math.isfinite(x):
        return "an unknown number of"
    n = round(x)
    if n >= 100:
        n = round(n, -(len(str(n)) - 2))
    return f"{n:,}"


def window_words(hours: float) -> str:
    if hours >= 48 and hours % 24 == 0:
        return f"{int(hours // 24)} days"
    if hours >= 1:
        return f"{hours:g} hours" if hours != 1 else "hour"
    return f"{hours * 60:g} minutes"


def names(values: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    values = [v for v in values if v]
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + " and " + values[-1]
