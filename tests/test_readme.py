"""The README stays true: the two commands, CI calling the test command, documents inside the repository."""

from __future__ import annotations

import re

from switchboard import docs


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    readme = docs.README.read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block
    ci = (docs.REPO / ".ci" / "run").read_text()
    assert "make test" in ci


def test_documents_are_in_the_repository_not_beside_it() -> None:
    """A clone has no ../shared: README and code cite docs/ARCHITECTURE.md and docs/SCHEMA.md."""
    readme = docs.README.read_text()
    for doc in ("docs/ARCHITECTURE.md", "docs/SCHEMA.md"):
        assert doc in readme and (docs.REPO / doc).is_file()
    cited = []
    for folder in ("core", "sandbox", "ingest", "sender", "analytics", "dashboard", "switchboard", "docs"):
        for file in (docs.REPO / folder).rglob("*"):
            if file.suffix in (".py", ".md", ".sql") and re.search(r"\.\./shared", file.read_text(encoding="utf-8")):
                cited.append(str(file.relative_to(docs.REPO)))
    assert "../shared" not in readme and not cited, cited
