"""The analyst views' documented contract, read from a warehouse's own catalogue.

The ``COMMENT ON`` statements of ``ingest/views.sql`` travel with the views into every published
snapshot, so any reader (the dashboard's Data page, the docs generator) reads them from the warehouse it
has open and needs nothing from ingest. ``schema_markdown`` is the body of ``docs/SCHEMA.md``.
"""

from __future__ import annotations

import duckdb
import pandas as pd

ANALYST_VIEWS = ("message_facts", "call_facts", "attempt_facts", "responses", "opted_out_members")


def view_comments(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every analyst view column with its type and comment: the documented schema."""
    return con.execute(
        """
        SELECT c.table_name AS view_name, c.column_name, c.data_type, c.comment
        FROM duckdb_columns() c
        WHERE list_contains($views, c.table_name)
        ORDER BY c.table_name, c.column_index
        """,
        {"views": list(ANALYST_VIEWS)},
    ).df()


def schema_markdown(con: duckdb.DuckDBPyConnection) -> str:
    """One Markdown section per analyst view (its comment, then a table of columns), in contract order."""
    views = dict(
        con.execute(
            "SELECT view_name, comment FROM duckdb_views() WHERE list_contains($views, view_name)",
            {"views": list(ANALYST_VIEWS)},
        ).fetchall()
    )
    cols = view_comments(con)
    out: list[str] = []
    for view in ANALYST_VIEWS:
        out += [
            "",
            f"## `{view}`",
            "",
            views.get(view) or "",
            "",
            "| column | type | meaning |",
            "| --- | --- | --- |",
        ]
        for r in cols[cols.view_name == view].itertuples():
            comment = (r.comment or "").replace("|", "\\|")
            out.append(f"| `{r.column_name}` | {r.data_type} | {comment} |")
    return "\n".join(out) + "\n"
