"""ingest/SCHEMA.md must match the live COMMENTs of the analyst views."""

from __future__ import annotations

from pathlib import Path

from switchboard.ingest import warehouse

SCHEMA_MD = Path(__file__).resolve().parents[1] / "ingest" / "SCHEMA.md"


def test_schema_md_matches_the_view_comments():
    con = warehouse.connect(":memory:")
    warehouse.create_schema(con)
    live = warehouse.schema_markdown(con)
    assert SCHEMA_MD.read_text() == live, (
        "ingest/SCHEMA.md is out of date: run  python -m ingest.warehouse > ingest/SCHEMA.md"
    )


def test_every_view_column_has_a_comment():
    con = warehouse.connect(":memory:")
    warehouse.create_schema(con)
    cols = warehouse.view_comments(con)
    missing = cols[cols.comment.isna() | (cols.comment == "")]
    assert missing.empty, missing[["view_name", "column_name"]].to_string()
    assert set(cols.view_name) == set(warehouse.ANALYST_VIEWS)
