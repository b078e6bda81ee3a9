"""The atheris harness (fuzz/atheris_targets.py), the connection harness it shares
(fuzz/conn_harness.py) and the corpus writer, loaded as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_squall_fuzz_{name}", FUZZ / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


targets = _load("atheris_targets")
conn = targets.conn_harness()
corpus = _load("make_corpus")
