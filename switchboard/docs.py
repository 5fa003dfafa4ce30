"""Generates ``docs/SCHEMA.md``, the one schema document, from the analyst views' live COMMENTs.

``python -m switchboard.docs`` rewrites it; ``tests/test_ingest_schema_docs.py`` fails when it is stale.
The README links to it rather than holding a second copy.
"""

from __future__ import annotations

from pathlib import Path

# A developer tool run from a checkout (it rewrites a file of the repository), so the repository is
# found from this file; installed code never looks for a source tree.
REPO = Path(__file__).resolve().parents[1]
SCHEMA_MD = REPO / "docs" / "SCHEMA.md"
README = REPO / "README.md"
HEADER = """\
# Warehouse schema: the analyst views

The stable contract for analysts: the views of the published warehouse (`data/warehouse.duckdb`,
open it read-only). Generated from the `COMMENT ON` statements of `ingest/views.sql` (and
`ingest/responses.sql` for the members' replies) by
`python -m switchboard.docs`; `tests/test_ingest_schema_docs.py` fails when the two disagree.
Internal tables (names starting with `_`) are not part of the contract: see `docs/ARCHITECTURE.md`.
"""


def schema_document() -> str:
    """The whole of docs/SCHEMA.md: the header above, then one section per view from the live COMMENTs."""
    from switchboard.analytics.schema import schema_markdown
    from switchboard.ingest import warehouse

    from switchboard.ingest.responses import refresh_responses

    con = warehouse.connect(":memory:")
    warehouse.create_schema(con)
    refresh_responses(con)  # the replies' views (idempotent: the facts refresh may have built them already)
    return HEADER + schema_markdown(con)


def update_schema_doc() -> bool:
    """Rewrite docs/SCHEMA.md; True when it changed."""
    new = schema_document()
    if SCHEMA_MD.is_file() and SCHEMA_MD.read_text(encoding="utf-8") == new:
        return False
    SCHEMA_MD.parent.mkdir(exist_ok=True)
    SCHEMA_MD.write_text(new, encoding="utf-8")
    return True


if __name__ == "__main__":
    print("docs/SCHEMA.md updated" if update_schema_doc() else "docs/SCHEMA.md already up to date")
