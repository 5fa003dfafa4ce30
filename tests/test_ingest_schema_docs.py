"""docs/SCHEMA.md, the one schema document, must match the live COMMENTs of the analyst views."""

from __future__ import annotations

from switchboard import docs
from switchboard.analytics import schema
from switchboard.ingest import warehouse


def test_schema_md_matches_the_view_comments():
    assert docs.SCHEMA_MD.read_text(encoding="utf-8") == docs.schema_document(), (
        "docs/SCHEMA.md is out of date: run  .venv/bin/python -m switchboard.docs"
    )


def test_every_analyst_view_is_documented():
    text = docs.SCHEMA_MD.read_text(encoding="utf-8")
    for view in schema.ANALYST_VIEWS:
        assert f"## `{view}`" in text


def test_there_is_one_schema_document():
    assert not (docs.REPO / "ingest" / "SCHEMA.md").exists()
    readme = (docs.REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/SCHEMA.md" in readme and "schema:begin" not in readme


def test_every_view_column_has_a_comment():
    con = warehouse.connect(":memory:")
    warehouse.create_schema(con)
    cols = schema.view_comments(con)
    missing = cols[cols.comment.isna() | (cols.comment == "")]
    assert missing.empty, missing[["view_name", "column_name"]].to_string()
    assert set(cols.view_name) == set(schema.ANALYST_VIEWS)
