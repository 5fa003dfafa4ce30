"""Switchboard: delivery analytics for Twilio SMS and voice.

One import namespace over the folders of the repository (see docs/ARCHITECTURE.md):
``switchboard.core`` (the bottom layer every part shares), ``switchboard.sandbox`` (a local
Twilio-compatible API), ``switchboard.ingest`` (Twilio + send logs into DuckDB),
``switchboard.sender`` (test campaigns), ``switchboard.analytics`` (aggregates and statistics)
and ``switchboard.dashboard`` (Streamlit). This folder itself is the top: the ``switchboard``
command (cli.py), the demo and the docs generator, which nothing else imports.
"""

__version__ = "0.1.0"
