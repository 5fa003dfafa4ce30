"""Switchboard: delivery analytics for Twilio SMS and voice.

The top-level packages are the layers (see ARCHITECTURE.md): ``sandbox`` (a local
Twilio-compatible API), ``ingest`` (Twilio + send logs into DuckDB), ``analytics``
(aggregates and statistics), ``dashboard`` (Streamlit) and ``sender`` (test
campaigns). This package holds only what they share: settings and the CLI.
"""

__version__ = "0.1.0"
