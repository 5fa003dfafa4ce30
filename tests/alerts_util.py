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


def build_alert_warehouse(path) -> None:
    """A warehouse with one resolved alert (Indosat, 30007) and one open (Telkomsel, 30003), whose webhook
    notifications failed (nobody listens on port 9) and were given up."""
    from dataclasses import replace

    import duckdb

    from switchboard.alerts import notify, run
    from switchboard.ingest import warehouse

    con = duckdb.connect(str(path))
    incident_world(incident_days=range(28, 30), total_days=36, con=con)
    cfg = replace(rules.parse({"defaults": {"recent_hours": 24}}),
                  webhooks=(rules.Webhook("http://127.0.0.1:9/hook", "json"),), max_attempts=1)
    for k in (28, 31):  # opened, then resolved
        run(con, cfg, as_of=end_of(k))
    con.execute("""UPDATE twilio_messages SET status = 'undelivered', error_code = 30003
                   WHERE to_carrier = 'Telkomsel' AND date_sent >= '2026-12-07' AND minute(date_sent) = 50""")
    warehouse.refresh_facts(con)
    run(con, cfg, as_of=end_of(35))
    notify.deliver(con, cfg, now=datetime(2030, 1, 1, tzinfo=UTC))
    con.execute("CHECKPOINT")
    con.close()


def config(**defaults) -> rules.Config:
    """Built-in rules with a one-day window (and any other default overridden), no channels."""
    return rules.parse({"defaults": {"recent_hours": 24, **defaults}})
