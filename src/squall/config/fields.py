"""How a configuration option is declared and checked, apart from the options
themselves (:mod:`squall.config.options`): the metadata each field carries, the
names it gets on the command line and in the environment, and the checks that
turn a bad value into one line naming the option."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LOOP_CHOICES = ("auto", "asyncio", "uvloop", "none")
HTTP_CHOICES = ("auto", "httptools", "h11")
WS_CHOICES = ("auto", "none", "websockets", "websockets-sansio", "wsproto")
INTERFACE_CHOICES = ("auto", "asgi3", "asgi2")
LIFESPAN_CHOICES = ("auto", "on", "off")
LOG_LEVEL_CHOICES = ("critical", "error", "warning", "info", "debug", "trace")


class ConfigError(ValueError):
    """A configuration mistake; its message is one line naming the option."""


@dataclass(frozen=True)
class Option:
    """How one Config field appears outside Python."""

    help: str
    group: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    multiple: bool = False  # repeatable flag, list value
    negatable: bool = True  # booleans get --x/--no-x
    flag: str | None = None  # CLI flag if not derived from the field name
    bool_value: bool = False  # a boolean given as a value (--x true), as Uvicorn does
    env: str | None = None  # extra legacy env var honoured as a default
    unavailable: str | None = None  # set while a later piece of work owns the option
    cli: bool = True


def option(default: Any, help: str, group: str = "server", **kw: Any) -> Any:
    meta = {"squall": Option(help=help, group=group, **kw)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    if isinstance(default, dict):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


NOT_YET = "is not available in this version of Squall yet"


def flag_name(f: dataclasses.Field[Any], meta: Option) -> str:
    return "--" + (meta.flag or f.name).replace("_", "-")


def env_name(f: dataclasses.Field[Any]) -> str:
    return "SQUALL_" + f.name.upper()


def field_kind(f: dataclasses.Field[Any]) -> str:
    """How a field's values are written: bool, list, float, int or str."""
    text = str(f.type)
    if text.startswith("bool"):
        return "bool"
    if text.startswith("list"):
        return "list"
    if "float" in text:
        return "float"
    if text.startswith("int"):
        return "int"
    return "str"


def check_type(f: dataclasses.Field[Any], value: Any) -> None:
    """Numbers and switches must be given as such (the CLI converts its strings)."""
    kind = str(f.type).split(" |")[0]
    if value is None or kind not in ("int", "float", "bool"):
        return
    ok = (
        isinstance(value, bool)
        if kind == "bool"
        else (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (kind == "float" or isinstance(value, int))
        )
    )
    if not ok:
        raise ConfigError(f"--{f.name.replace('_', '-')}: expected {kind}, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(
            f"--{name.replace('_', '-')}: {value!r} is not one of {', '.join(choices)}"
        )


def check_min(name: str, value: float | None, low: float) -> None:
    if value is not None and value < low:
        raise ConfigError(f"--{name.replace('_', '-')}: must be at least {low}, got {value}")


def parse_header(item: Any) -> tuple[str, str]:
    if isinstance(item, (tuple, list)) and len(item) == 2:
        name, value = str(item[0]), str(item[1])
    elif isinstance(item, str) and ":" in item:
        name, value = item.split(":", 1)
    else:
        raise ConfigError(f"--header: expected NAME:VALUE, got {item!r}")
    # Uvicorn keeps the space after the colon and then breaks; Squall strips it.
    name, value = name.strip(), value.strip()
    from squall.protocols.http1.base import valid_header_name, valid_header_value

    try:
        raw_name, raw_value = name.encode("latin-1"), value.encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError(f"--header: {item!r} is not latin-1 text") from None
    if not valid_header_name(raw_name):
        raise ConfigError(f"--header: invalid header name {name!r}")
    if not valid_header_value(raw_value):
        raise ConfigError(f"--header: invalid header value for {name!r}")
    return name.lower(), value
