"""Keeps the README's "Analyst views" section equal to the views' live COMMENTs.

``python -m switchboard.docs`` rewrites the section; tests/test_readme.py fails when it is stale.
"""

from __future__ import annotations

import re
from pathlib import Path

# A developer tool run from a checkout (it rewrites files of the repository), so the repository is
# found from this file; installed code never looks for a source tree.
REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BEGIN = "<!-- schema:begin (generated from the views' COMMENTs; tests/test_readme.py checks it) -->"
END = "<!-- schema:end -->"


def schema_section() -> str:
    """The analyst views as Markdown, one heading level below the README's section."""
    from switchboard.ingest import warehouse

    con = warehouse.connect(":memory:")
    warehouse.create_schema(con)
    text = warehouse.schema_markdown(con)
    body = text[text.index("\n## ") + 1 :]  # drop SCHEMA.md's own title and preamble
    return re.sub(r"^## ", "#### ", body, flags=re.MULTILINE).strip() + "\n"


def current_section(readme: str) -> str:
    start, stop = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[start:stop].strip("\n") + "\n"


def update_readme() -> bool:
    """Rewrite the section; True when it changed."""
    readme = README.read_text()
    start, stop = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    new = readme[:start] + "\n" + schema_section() + readme[stop:]
    if new != readme:
        README.write_text(new)
        return True
    return False


if __name__ == "__main__":
    print("README.md updated" if update_readme() else "README.md already up to date")
