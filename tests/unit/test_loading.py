"""Loading the app: import strings, factories, ASGI2/ASGI3 detection."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from squall.config.options import Config
from squall.loading import (
    ASGI2Middleware,
    ImportFromStringError,
    LoadError,
    import_from_string,
    is_asgi3,
    load_app,
)

_counter = itertools.count()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write a uniquely named module into a temporary sys.path entry; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def make(source: str, package: bool = False) -> str:
        name = f"squall_test_mod_{os.getpid()}_{next(_counter)}"
        if package:
            pkg = tmp_path / name
            pkg.mkdir()
            (pkg / "__init__.py").write_text(textwrap.dedent(source))
        else:
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        created.append(name)
        return name

    yield make
    for name in list(sys.modules):
        if any(name == c or name.startswith(c + ".") for c in created):
            del sys.modules[name]


APP_SOURCE = """
    async def app(scope, receive, send):
        pass

    class Holder:
        class Inner:
            async def app(scope, receive, send):
                pass

    def create_app():
        return app

    def create_app_with_arg(arg):
        return app

    def asgi2(scope):
        async def instance(receive, send):
            pass
        return instance

    value = 42
    _private = 1
"""


# -- import_from_string -------------------------------------------------------------------


def test_import_module_attribute(make_module: Any) -> None:
    name = make_module(APP_SOURCE)
    app = import_from_string(f"{name}:app")
    assert app is sys.modules[name].app


def test_import_dotted_attribute(make_module: Any) -> None:
    name = make_module(APP_SOURCE)
    assert import_from_string(f"{name}:Holder.Inner.app") is sys.modules[name].Holder.Inner.app


def test_import_from_package_submodule(make_module: Any, tmp_path: Path) -> None:
    pkg = make_module("", package=True)
    (tmp_path / pkg / "sub.py").write_text("obj = object()\n")
    assert import_from_string(f"{pkg}.sub:obj") is sys.modules[f"{pkg}.sub"].obj


def test_non_string_returned_as_is() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    assert import_from_string(app) is app


@pytest.mark.parametrize("bad", ["nocolon", ":app", "module:", ""])
def test_bad_format(bad: str) -> None:
    with pytest.raises(ImportFromStringError) as info:
        import_from_string(bad)
    assert "<module>:<attribute>" in str(info.value)


def test_missing_module_named() -> None:
    with pytest.raises(ImportFromStringError) as info:
        import_from_string("squall_no_such_module_xyz:app")
    assert str(info.value) == 'Could not import module "squall_no_such_module_xyz".'


def test_missing_submodule_named(make_module: Any) -> None:
    pkg = make_module("", package=True)
    with pytest.raises(ImportFromStringError) as info:
        import_from_string(f"{pkg}.missing:app")
    assert f'"{pkg}.missing"' in str(info.value)


def test_missing_parent_of_dotted_module_named() -> None:
    with pytest.raises(ImportFromStringError) as info:
        import_from_string("squall_no_pkg_xyz.sub:app")
    assert '"squall_no_pkg_xyz.sub"' in str(info.value)


def test_missing_dependency_inside_module_is_not_hidden(make_module: Any) -> None:
    name = make_module("import squall_missing_dependency_xyz\napp = 1\n")
    with pytest.raises(ModuleNotFoundError) as info:
        import_from_string(f"{name}:app")
    assert info.value.name == "squall_missing_dependency_xyz"


def test_missing_attribute_lists_what_module_has(make_module: Any) -> None:
    name = make_module(APP_SOURCE)
    with pytest.raises(ImportFromStringError) as info:
        import_from_string(f"{name}:nope")
    message = str(info.value)
    assert f'Attribute "nope" not found in module "{name}".' in message
    assert "It has:" in message
    for public in ("app", "create_app", "value", "Holder"):
        assert public in message
    assert "_private" not in message
    assert "\n" not in message


def test_missing_dotted_attribute(make_module: Any) -> None:
    name = make_module(APP_SOURCE)
    with pytest.raises(ImportFromStringError) as info:
        import_from_string(f"{name}:Holder.missing")
    assert 'Attribute "Holder.missing"' in str(info.value)
    assert "Inner" in str(info.value)


def test_error_in_module_propagates(make_module: Any) -> None:
    name = make_module("raise RuntimeError('boom at import')\n")
    with pytest.raises(RuntimeError, match="boom at import"):
        import_from_string(f"{name}:app")


def test_import_errors_are_load_errors() -> None:
    assert issubclass(ImportFromStringError, LoadError)


# -- load_app ---------------------------------------------------------------------------------


def test_load_app_asgi3(make_module: Any) -> None:
    name = make_module(APP_SOURCE)
    app = load_app(Config(f"{name}:app"))
    assert app is sys.modules[name].app


def test_load_app_factory(make_module: Any) -> None:
    name = make_module(APP_SOURCE)
    app = load_app(Config(f"{name}:create_app", factory=True))
    assert app is sys.modules[name].app


def test_load_app_factory_with_wrong_signature(make_module: Any) -> None:
    name = make_module(APP_SOURCE)
    with pytest.raises(LoadError, match="factory"):
        load_app(Config(f"{name}:create_app_with_arg", factory=True))


def test_load_app_asgi2_detected_and_wrapped(make_module: Any) -> None:
    name = make_module(APP_SOURCE)
    app = load_app(Config(f"{name}:asgi2"))
    assert isinstance(app, ASGI2Middleware)
    assert app.app is sys.modules[name].asgi2


def test_load_app_interface_forced(make_module: Any) -> None:
    name = make_module(APP_SOURCE)
    assert isinstance(load_app(Config(f"{name}:app", interface="asgi2")), ASGI2Middleware)
    assert load_app(Config(f"{name}:asgi2", interface="asgi3")) is sys.modules[name].asgi2


def test_load_app_bad_import_string() -> None:
    with pytest.raises(ImportFromStringError):
        load_app(Config("squall_no_such_module_xyz:app"))


def test_load_app_missing_dependency_is_load_error(make_module: Any) -> None:
    name = make_module("import squall_missing_dependency_xyz\n")
    with pytest.raises(LoadError) as info:
        load_app(Config(f"{name}:app"))
    assert "squall_missing_dependency_xyz" in str(info.value)


def test_load_app_none() -> None:
    with pytest.raises(LoadError, match="No ASGI app"):
        load_app(Config(None))


def test_load_app_app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"squall_app_dir_mod_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text("async def app(scope, receive, send):\n    pass\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        app = load_app(Config(f"{name}:app", app_dir=str(tmp_path)))
        assert app is sys.modules[name].app
        assert sys.path[0] == str(tmp_path)
    finally:
        sys.modules.pop(name, None)


# -- is_asgi3 ---------------------------------------------------------------------------------


async def asgi3_function(scope: Any, receive: Any, send: Any) -> None:
    pass


def asgi2_function(scope: Any) -> Any:
    async def instance(receive: Any, send: Any) -> None:
        pass

    return instance


class ASGI3Instance:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


class ASGI2Instance:
    def __call__(self, scope: Any) -> Any:
        return asgi2_function(scope)


class ASGI2Class:
    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        pass


class ASGI3Class:
    """A class whose instances are awaitable: calling it is the ASGI 3 call."""

    def __init__(self, scope: Any, receive: Any, send: Any) -> None:
        pass

    def __await__(self) -> Any:
        return iter(())


class WithMethod:
    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        pass

    def sync(self, scope: Any) -> Any:
        return asgi2_function(scope)


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (asgi3_function, True),
        (asgi2_function, False),
        (ASGI3Instance(), True),
        (ASGI2Instance(), False),
        (ASGI2Class, False),
        (ASGI3Class, True),
        (WithMethod().app, True),
        (WithMethod().sync, False),
    ],
    ids=[
        "async-function",
        "sync-function",
        "instance-async-call",
        "instance-sync-call",
        "asgi2-class",
        "awaitable-class",
        "async-method",
        "sync-method",
    ],
)
def test_is_asgi3(app: Any, expected: bool) -> None:
    assert is_asgi3(app) is expected


# -- ASGI2Middleware --------------------------------------------------------------------------


def test_asgi2_adapter_runs_two_step_app() -> None:
    seen: dict[str, Any] = {}

    class App:
        def __init__(self, scope: Any) -> None:
            seen["scope"] = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            seen["message"] = await receive()
            await send({"type": "http.response.start", "status": 204, "headers": []})

    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}}
    asyncio.run(ASGI2Middleware(App)(scope, receive, send))
    assert seen["scope"] is scope
    assert scope["asgi"] == {"version": "2.0", "spec_version": "2.3"}
    assert seen["message"]["body"] == b"x"
    assert sent == [{"type": "http.response.start", "status": 204, "headers": []}]


def test_asgi2_adapter_adds_asgi_key() -> None:
    scopes: list[Any] = []

    def app(scope: Any) -> Any:
        scopes.append(scope)

        async def instance(receive: Any, send: Any) -> None:
            pass

        return instance

    async def noop(*args: Any) -> Any:
        return None

    scope: dict[str, Any] = {"type": "lifespan"}
    asyncio.run(ASGI2Middleware(app)(scope, noop, noop))
    assert scopes[0]["asgi"] == {"version": "2.0"}
