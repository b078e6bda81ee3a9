"""Rules the modules compiled by mypyc (setup.py HOT_MODULES) must keep.

mypyc compiles the same typed source, but it trusts the types more than
CPython does: a variable gets one type for the whole function, a class may
not derive from most built-ins, and code the checker believes unreachable
is left out. These checks catch the first two statically; the third is
``warn_unreachable`` in the mypy configuration (checked here too). The test
suite also runs on the compiled build (scripts/test).
"""

from __future__ import annotations

import ast
import builtins
import runpy
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
HOT_MODULES: list[str] = runpy.run_path(str(ROOT / "setup.py"), run_name="setup")["HOT_MODULES"]
BUILTINS = set(dir(builtins)) - {"object", "Exception"}


def tree(module: str) -> ast.Module:
    return ast.parse((ROOT / "src" / module).read_text(), module)


def test_the_hot_modules_exist() -> None:
    assert len(HOT_MODULES) >= 10
    for module in HOT_MODULES:
        assert (ROOT / "src" / module).is_file(), module


@pytest.mark.parametrize("module", HOT_MODULES)
def test_an_except_name_has_one_type_per_function(module: str) -> None:
    found = []
    for fn in ast.walk(tree(module)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            types: dict[str, set[str]] = {}
            for node in ast.walk(fn):
                if isinstance(node, ast.ExceptHandler) and node.name and node.type:
                    types.setdefault(node.name, set()).add(ast.unparse(node.type))
            found += [f"{fn.name}: {n} {sorted(t)}" for n, t in types.items() if len(t) > 1]
    assert not found


@pytest.mark.parametrize("module", HOT_MODULES)
def test_classes_derive_from_no_built_in_but_exception(module: str) -> None:
    bad = [
        f"{node.name}({ast.unparse(base)})"
        for node in ast.walk(tree(module))
        if isinstance(node, ast.ClassDef)
        for base in node.bases
        if ast.unparse(base) in BUILTINS
    ]
    assert not bad, "move these to squall/errors.py (never compiled)"


def test_mypy_warns_of_unreachable_code() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert config["warn_unreachable"] is True
