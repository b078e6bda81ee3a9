from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_option_table_matches_config() -> None:
    gen = runpy.run_path(str(ROOT / "scripts" / "gen_readme.py"))
    text = (ROOT / "README.md").read_text()
    assert gen["render"](text) == text, "run: python scripts/gen_readme.py"


def test_readme_has_the_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "squall examples.hello:app" in text
    assert "./scripts/test" in text
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()
