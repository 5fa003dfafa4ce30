"""Hand-built warehouses for the alerts tests: known traffic per day and hour, incidents where we put them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from switchboard.alerts import rules
from tests.test_analytics_warehouse import D0, Hand

BASE_DAYS = 28
INDOSAT = "Indosat Ooredoo Hutchison"


def day(k: int) -> date:
    return D0 + timedelta(days=k)


def end_of(k: int) -> datetime:
    """An evaluation instant: the last message of day ``k`` is at 23:50 (see ``traffic``)."""
    d = day(k)
    return datetime(d.year, d.month, d.day, 23, 50, tzinfo=UTC)


def traffic(h: Hand, k: int, *, failing: int = 0, code: int = 30007, carrier: str = INDOSAT, per_hour: int = 2,
            template: str = "pr_standard") -> None:
    """Day ``k``: ``per_hour`` SMS to Indonesia per carrier per hour (Telkomsel and Indosat), the last at
    23:50; ``failing`` of each hour's Indosat SMS fail with ``code``."""
    for hour in range(24):
        for c in ("Telkomsel", INDOSAT):
            for i in range(per_hour):
                bad = c == carrier and i < failing
                h.sms(day=day(k), hour=hour, minute=50 - i, carrier=c, template=template, purpose="password_reset",
                      status="undelivered" if bad else "delivered", error=code if bad else None)


def incident_world(*, incident_days: range = range(28, 31), total_days: int = 40, failing: int = 1,
                   con=None):
    """28 quiet days, then half of Indosat's SMS fail with 30007 on ``incident_days``, then quiet again."""
    h = Hand()
    for k in range(total_days):
        traffic(h, k, failing=failing if k in incident_days else 0)
    return h.build(con)


def config(**defaults) -> rules.Config:
    """Built-in rules with a one-day window (and any other default overridden), no channels."""
    return rules.parse({"defaults": {"recent_hours": 24, **defaults}})
