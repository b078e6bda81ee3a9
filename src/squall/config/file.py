"""Options from a TOML file: ``--config squall.toml`` or ``[tool.squall]``.

Every command-line option can be set by its name, with dashes or
underscores (``limit-concurrency = 100``), plus ``app``. Precedence is
command line, then ``SQUALL_*`` environment, then the file, then defaults.
Without ``--config``, a ``[tool.squall]`` table in ``./pyproject.toml`` is
used when there is one. An unknown key or a value of the wrong type is one
error line naming it (with a suggestion for a typo).
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from pathlib import Path
from typing import Any

from squall.config.fields import ConfigError, field_kind
from squall.config.options import options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _fields() -> dict[str, dataclasses.Field[Any]]:
    """Field and flag names (``reload_dirs`` and ``reload_dir``) -> field."""
    fields: dict[str, dataclasses.Field[Any]] = {}
    for f, meta in options():
        if meta.cli:
            fields[f.name] = f
            if meta.flag:
                fields[meta.flag] = f
    return fields


def find_file(explicit: str | None, cwd: Path | None = None) -> tuple[Path, str] | None:
    """The file to read and the table in it ("" for the top level)."""
    if explicit:
        return Path(explicit), ""
    pyproject = (cwd or Path.cwd()) / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return None  # not ours to judge unless it has our table
        if isinstance(data.get("tool"), dict) and "squall" in data["tool"]:
            return pyproject, "tool.squall"
    return None


def load(path: Path, table: str = "") -> dict[str, Any]:
    """Read and check the options in ``path``; return Config keyword arguments."""
    label = f"{path}" + (f" [{table}]" if table else "")
    try:
        data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config: {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from None
    for part in table.split(".") if table else ():
        data = data.get(part, {})
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a table of options")
    fields = _fields()
    known = ["app", *fields]
    result: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name == "app":
            if not isinstance(value, str):
                raise ConfigError(f"{label}: app: expected a string like 'main:app'")
            result["app"] = value
            continue
        f = fields.get(name)
        if f is None:
            close = difflib.get_close_matches(name, known, n=1)
            spelled = (
                close[0].replace("_", "-") if close and "-" in key else close[0] if close else ""
            )
            hint = f" (did you mean {spelled!r}?)" if close else ""
            raise ConfigError(f"{label}: unknown option {key!r}{hint}")
        result[f.name] = _check(label, key, f, value)
    return result


def _check(label: str, key: str, f: dataclasses.Field[Any], value: Any) -> Any:
    kind = field_kind(f)
    optional = "None" in str(f.type)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        expected = "an integer"
    elif kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        expected = "a number"
    elif kind == "list":
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        expected = "a string or a list of strings"
    else:
        if isinstance(value, str) or (f.name == "forwarded_allow_ips" and isinstance(value, list)):
            return value
        if f.name == "log_config" and isinstance(value, dict):
            return value
        expected = "a string"
    if optional and value == "none":
        return None
    raise ConfigError(f"{label}: {key}: expected {expected}, got {value!r}")


def dump(values: dict[str, Any]) -> str:
    """The effective configuration as TOML (for --print-config)."""
    lines = []
    fields = _fields()
    for name, raw in values.items():
        if raw is None:
            f = fields.get(name)
            if f is not None and f.default is not None and "None" in str(f.type):
                lines.append(f'{name.replace("_", "-")} = "none"')  # turned off, not the default
            continue
        if callable(raw) or isinstance(raw, dict):
            continue
        # headers are stored as (name, value) pairs and written as "name: value"
        value = [f"{n}: {v}" for n, v in raw] if name == "headers" else raw
        lines.append(f"{name.replace('_', '-')} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
