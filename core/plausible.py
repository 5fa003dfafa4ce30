"""The plausible time window: one definition for ingest's bounds and the dashboard's date range.

Ingest rejects a timestamp outside it (``ingest/bounds.py``); the dashboard leaves out days outside it
when a warehouse holds them anyway (an analyst may have written one). Twilio started in 2008, so
2000-01-01 leaves room to spare; a day after the load's own clock covers drift and time-zone mistakes.
"""

from __future__ import annotations

from datetime import date

EARLIEST_DAY = date(2000, 1, 1)
FUTURE_SLACK_DAYS = 1
