"""The atheris targets (fuzz/atheris_targets.py) run on their seed corpus, without atheris.

This keeps the harness and the committed corpus working between long runs:
every seed passes its target's checks, and the corpus is what
``fuzz/make_corpus.py`` writes.
"""

from __future__ import annotations

import pytest

from tests.fuzz._harness import FUZZ, corpus, targets


def test_atheris_is_imported_only_when_run() -> None:
    assert "atheris" not in vars(targets)


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_seed_corpus_is_committed_and_current(target: str) -> None:
    folder = FUZZ / "corpus" / target
    on_disk = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert on_disk == corpus.SEEDS[target](), "run: python fuzz/make_corpus.py"


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_target_passes_on_its_seeds(target: str) -> None:
    run = targets.TARGETS[target]
    for path in sorted((FUZZ / "corpus" / target).iterdir()):
        data = path.read_bytes()
        run(data)
        for cut in range(0, len(data), max(1, len(data) // 8)):  # and on truncated seeds
            run(data[:cut])
