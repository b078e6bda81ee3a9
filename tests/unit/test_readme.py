from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_option_table_matches_config() -> None:
    # the option table moved from the README to docs/options.md, which the README links to
    gen = runpy.run_path(str(ROOT / "scripts" / "gen_readme.py"))
    text = (ROOT / "docs" / "options.md").read_text()
    assert "<!-- options:begin -->" in text
    assert gen["render_docs"](text) == text, "run: python scripts/gen_readme.py"
    readme = (ROOT / "README.md").read_text()
    assert gen["render"](readme) == readme, "run: python scripts/gen_readme.py"
    assert "(docs/options.md)" in readme


def test_readme_has_the_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "squall examples.hello:app" in text
    assert "./scripts/test" in text
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_readme_starts_with_the_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert text.index("```sh\n") < text.index("\n## ")
    assert ".venv/bin/squall examples.hello:app" in first_block
    assert "./scripts/test" in first_block


def test_readme_keeps_the_benchmark_block_and_a_security_section() -> None:
    text = (ROOT / "README.md").read_text()
    assert text.count("<!-- bench:begin -->") == 1
    assert text.count("<!-- bench:end -->") == 1
    security = text.split("\n## Security\n", 1)[1].split("\n## ", 1)[0]
    assert "Report a vulnerability" in security
    assert "(docs/limits-security.md)" in security


def test_readme_links_every_docs_page() -> None:
    text = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)\)", text))
    pages = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, pages - linked
    for page in linked:
        assert (ROOT / page).is_file(), page
