"""--reload: which changed files count (FileFilter) and the polling fallback (_PollWatcher)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from squall.config.options import Config
from squall.supervisors.reload import DEFAULT_EXCLUDES, DEFAULT_INCLUDES, FileFilter, _PollWatcher

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SQUALL_") or name == "WEB_CONCURRENCY":
            monkeypatch.delenv(name)


def file_filter(includes: list[str] | None = None, excludes: list[str] | None = None) -> FileFilter:
    config = Config(
        "app:app", reload=True, reload_includes=includes or [], reload_excludes=excludes or []
    )
    return FileFilter(config)


# -- FileFilter -----------------------------------------------------------------------------


def test_defaults_match_uvicorn() -> None:
    accept = file_filter()
    assert accept.includes == ["*.py"] == DEFAULT_INCLUDES
    assert accept.excludes == [".*", ".py[cod]", ".sw.*", "~*"] == DEFAULT_EXCLUDES
    assert accept.excluded_dirs == []


@pytest.mark.parametrize(
    ("path", "accepted"),
    [
        ("/src/app.py", True),
        ("/src/pkg/deep/module.py", True),
        ("/src/notes.txt", False),
        ("/src/app.pyc", False),
        ("/src/app.py~", False),
        ("/src/.hidden.py", False),  # ".*"
        ("/src/~backup.py", False),  # "~*"
        ("/src/app.pyx", False),
    ],
)
def test_default_patterns(path: str, accepted: bool) -> None:
    assert file_filter()(path) is accepted


def test_include_adds_to_the_default() -> None:
    accept = file_filter(includes=["*.txt"])
    assert accept.includes == ["*.py", "*.txt"]
    assert accept("/src/notes.txt")
    assert accept("/src/app.py")
    assert not accept("/src/data.csv")


def test_exclude_adds_to_the_defaults() -> None:
    accept = file_filter(excludes=["test_*.py"])
    assert accept.excludes == [*DEFAULT_EXCLUDES, "test_*.py"]
    assert not accept("/src/test_app.py")
    assert accept("/src/app.py")
    assert not accept("/src/.hidden.py")  # the defaults still apply


def test_default_include_named_in_excludes_is_dropped() -> None:
    accept = file_filter(includes=["*.txt"], excludes=["*.py"])
    assert accept.includes == ["*.txt"]
    assert not accept("/src/app.py")
    assert accept("/src/notes.txt")


def test_default_exclude_named_in_includes_is_dropped() -> None:
    accept = file_filter(includes=[".*"])
    assert ".*" not in accept.excludes
    assert accept.excludes == [".py[cod]", ".sw.*", "~*"]
    assert accept("/src/.env")
    assert accept("/src/.hidden.py")
    assert not accept("/src/~backup.py")  # the other defaults stay


def test_excluded_directory_absolute(tmp_path: Path) -> None:
    (tmp_path / "vendor" / "deep").mkdir(parents=True)
    accept = file_filter(excludes=[str(tmp_path / "vendor")])
    assert accept.excluded_dirs == [(tmp_path / "vendor").resolve()]
    assert not accept(str(tmp_path / "vendor" / "lib.py"))
    assert not accept(str(tmp_path / "vendor" / "deep" / "lib.py"))
    assert accept(str(tmp_path / "app.py"))
    assert accept(str(tmp_path / "vendorish.py"))  # a sibling whose name starts the same


def test_excluded_directory_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "build").mkdir()
    monkeypatch.chdir(tmp_path)
    accept = file_filter(excludes=["build"])
    assert accept.excluded_dirs == [(tmp_path / "build").resolve()]
    assert not accept(str(tmp_path / "build" / "gen.py"))
    assert accept(str(tmp_path / "src.py"))
    # "build" is a directory, and names no file: a file named build.py is still watched
    assert accept(str(tmp_path / "build.py"))


def test_exclude_that_is_not_a_directory_is_a_pattern(tmp_path: Path) -> None:
    accept = file_filter(excludes=[str(tmp_path / "missing")])
    assert accept.excluded_dirs == []
    assert accept(str(tmp_path / "missing" / "x.py"))


def test_exclude_pattern_with_a_directory_component() -> None:
    accept = file_filter(excludes=["vendor/*"])
    assert not accept("/src/vendor/lib.py")
    assert accept("/src/app.py")


def test_include_pattern_with_a_directory_component() -> None:
    accept = file_filter(includes=["templates/*.html"])
    assert accept("/src/templates/index.html")
    assert not accept("/src/static/index.html")


def test_include_naming_a_dotfile_exactly_beats_the_default_exclude() -> None:
    accept = file_filter(includes=[".env"])
    assert accept("/src/.env")
    assert not accept("/src/.other")


def test_exclude_naming_a_directory_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./node_modules here
    accept = file_filter(excludes=["node_modules"])
    assert not accept(str(tmp_path / "web" / "node_modules" / "pkg" / "x.py"))
    assert accept(str(tmp_path / "web" / "x.py"))


# -- _PollWatcher ---------------------------------------------------------------------------


def bump(path: Path, seconds: float = 10.0) -> None:
    """A later modification time, without waiting for the clock."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + int(seconds * 1e9)))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    for name in ("a.py", "b.py", "notes.txt", ".hidden.py", "pkg/c.py"):
        (tmp_path / name).write_text("x = 1\n")
    return tmp_path


def watcher(root: Path, **kwargs: list[str]) -> _PollWatcher:
    return _PollWatcher([root], file_filter(**kwargs))


def poll(w: _PollWatcher) -> list[str]:
    return sorted(w.wait(0, threading.Event()))


def test_poll_initial_scan_holds_only_accepted_files(tree: Path) -> None:
    w = watcher(tree)
    assert sorted(w.mtimes) == sorted(str(tree / n) for n in ("a.py", "b.py", "pkg/c.py"))


def test_poll_nothing_changed(tree: Path) -> None:
    w = watcher(tree)
    assert poll(w) == []


def test_poll_reports_exactly_the_changed_file(tree: Path) -> None:
    w = watcher(tree)
    bump(tree / "b.py")
    assert poll(w) == [str(tree / "b.py")]
    assert poll(w) == []  # reported once


def test_poll_reports_a_change_in_a_subdirectory(tree: Path) -> None:
    w = watcher(tree)
    bump(tree / "pkg" / "c.py")
    assert poll(w) == [str(tree / "pkg" / "c.py")]


def test_poll_reports_new_and_deleted_files(tree: Path) -> None:
    w = watcher(tree)
    (tree / "a.py").unlink()
    (tree / "new.py").write_text("y = 2\n")
    assert poll(w) == [str(tree / "a.py"), str(tree / "new.py")]
    assert poll(w) == []


def test_poll_ignores_excluded_and_unmatched_files(tree: Path) -> None:
    w = watcher(tree)
    bump(tree / "notes.txt")
    bump(tree / ".hidden.py")
    (tree / "other.txt").write_text("z")
    assert poll(w) == []
    bump(tree / "a.py")
    assert poll(w) == [str(tree / "a.py")]


def test_poll_ignores_an_excluded_directory(tree: Path) -> None:
    w = watcher(tree, excludes=[str(tree / "pkg")])
    bump(tree / "pkg" / "c.py")
    (tree / "pkg" / "d.py").write_text("")
    assert poll(w) == []
    bump(tree / "a.py")
    assert poll(w) == [str(tree / "a.py")]


def test_poll_with_include_pattern(tree: Path) -> None:
    w = watcher(tree, includes=["*.txt"])
    bump(tree / "notes.txt")
    assert poll(w) == [str(tree / "notes.txt")]


def test_poll_watches_several_directories(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "x.py").write_text("")
    (two / "y.py").write_text("")
    (tmp_path / "outside.py").write_text("")
    w = _PollWatcher([one, two], file_filter())
    bump(two / "y.py")
    bump(tmp_path / "outside.py")
    assert poll(w) == [str(two / "y.py")]


def test_poll_wait_returns_early_when_stopped(tree: Path) -> None:
    w = watcher(tree)
    stop = threading.Event()
    stop.set()
    bump(tree / "a.py")
    # a 60 s delay, but the stop event is set: returns at once (pytest-timeout guards)
    assert w.wait(60, stop) == [str(tree / "a.py")]
