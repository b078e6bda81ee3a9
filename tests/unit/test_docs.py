"""The documentation site: generated parts are current, and it builds with --strict."""

from __future__ import annotations

import importlib.util
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_docs_option_reference_matches_config() -> None:
    gen = runpy.run_path(str(ROOT / "scripts" / "gen_readme.py"))
    text = (ROOT / "docs" / "options.md").read_text()
    assert "<!-- options:begin -->" in text
    assert gen["render_docs"](text) == text, "run: python scripts/gen_readme.py"


def test_docs_option_reference_lists_every_option() -> None:
    from squall.cli import build_parser

    text = (ROOT / "docs" / "options.md").read_text()
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and not flag.startswith("--no-"):
                assert f'<a id="{flag}"></a>' in text, flag


def test_docs_benchmarks_match_readme() -> None:
    gen = runpy.run_path(str(ROOT / "scripts" / "gen_readme.py"))
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "<!-- bench:begin -->" in text
    assert gen["render_benchmarks"](text, readme) == text, "run: python scripts/gen_readme.py"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs and mkdocs-material are not installed (pip install -e '.[test]')",
)
def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "options" / "index.html").is_file()
