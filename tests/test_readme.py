"""The README stays true: the two commands, CI calling the test command, the schema section."""

from __future__ import annotations

from switchboard import docs


def test_readme_schema_section_matches_the_live_view_comments() -> None:
    readme = docs.README.read_text()
    assert docs.current_section(readme) == docs.schema_section(), (
        "README's analyst-views section is stale: run  .venv/bin/python -m switchboard.docs"
    )


def test_every_analyst_view_is_documented_in_the_readme() -> None:
    section = docs.current_section(docs.README.read_text())
    for view in ("message_facts", "call_facts", "attempt_facts"):
        assert f"`{view}`" in section


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    readme = docs.README.read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block
    ci = (docs.REPO / ".ci" / "run").read_text()
    assert "make test" in ci
