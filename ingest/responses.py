"""Responses (issue 18): members' replies classified (opt_out, opt_in, help, other) and linked to the
message they answer, and the members opted out now. The rules are in ``responses.sql`` (and in the
views' comments): a full rebuild, run after ``_attempt_facts`` is current."""

from __future__ import annotations

from pathlib import Path

import duckdb

RESPONSES_SQL = Path(__file__).with_name("responses.sql")
REPLY_WINDOW_HOURS = 168  # a reply answers a message sent at most this long before it
TABLES = ("_reply_keywords", "_response_facts", "_opt_out_messages", "_opted_out_members")
VIEWS = ("responses", "opted_out_members")


def refresh_responses(con: duckdb.DuckDBPyConnection, *, window_hours: int = REPLY_WINDOW_HOURS) -> None:
    """Rebuild ``_response_facts``, ``_opted_out_members`` and the ``responses`` / ``opted_out_members``
    views (CREATE OR REPLACE). Needs ``twilio_messages`` and ``_attempt_facts``."""
    from switchboard.ingest.warehouse import _statements

    if int(window_hours) <= 0:
        raise ValueError("window_hours must be positive")
    con.execute("SET VARIABLE reply_window_hours = ?", [int(window_hours)])
    for stmt in _statements(RESPONSES_SQL):
        con.execute(stmt)
    con.execute("RESET VARIABLE reply_window_hours")
