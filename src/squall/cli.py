"""The command line, generated from the fields of :class:`~squall.config.options.Config`.

Each field with an :class:`~squall.config.options.Option` record becomes a flag named
after it (``limit_concurrency`` -> ``--limit-concurrency``) and can also be
set through ``SQUALL_<NAME>`` or a TOML file (see ``configfile.py``).
Precedence: command line, then environment, then the file, then the field's
default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
from collections.abc import Callable, Sequence
from typing import Any

from squall._version import __version__
from squall.config import file as configfile
from squall.config.fields import ConfigError, Option, env_name, field_kind, flag_name
from squall.config.options import Config, options

GROUP_TITLES = {
    "app": "Application",
    "socket": "Socket binding",
    "impl": "Implementation",
    "process": "Processes",
    "logging": "Logging",
    "http": "HTTP",
    "limits": "Limits and timeouts",
    "tls": "TLS",
    "websocket": "WebSocket",
}


NONE = object()  # "none" given for an optional number: the option is set to None


def _converter(f: dataclasses.Field[Any], meta: Option) -> Callable[[str], Any]:
    kind = field_kind(f)
    if kind in ("int", "float"):
        number: Callable[[str], Any] = int if kind == "int" else float
        if "None" not in str(f.type):
            return number

        def optional(raw: str) -> Any:  # e.g. --ws-ping-interval none
            return NONE if raw.strip().lower() == "none" else number(raw)

        optional.__name__ = number.__name__  # argparse names the type in its error
        return optional
    if f.name == "log_level":
        return str.lower
    return str


def _bool_value(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {raw!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="squall",
        description="Serve an ASGI application. Every option can also be set with "
        "SQUALL_<OPTION> in the environment, e.g. SQUALL_PORT=9000.",
    )
    parser.add_argument("app", nargs="?", metavar="APP", help="The ASGI app, as module:attribute.")
    parser.add_argument("--version", action="store_true", help="Print the version and exit.")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="Read options from this TOML file (default: [tool.squall] in ./pyproject.toml).",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="Check the configuration (file, environment, command line) and exit.",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="Print the effective configuration as TOML and exit.",
    )
    groups = {key: parser.add_argument_group(title) for key, title in GROUP_TITLES.items()}
    for f, meta in options():
        if not meta.cli:
            continue
        group = groups.get(meta.group, parser)
        flag = flag_name(f, meta)
        kind = field_kind(f)
        help_text = meta.help.replace("%", "%%")  # argparse formats help with %
        if meta.unavailable:
            help_text += " (not available yet)"
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if kind == "bool" and meta.bool_value:
            group.add_argument(flag, type=_bool_value, metavar="BOOL", **kwargs)
            continue
        if kind == "bool":
            action = argparse.BooleanOptionalAction if meta.negatable else "store_const"
            if meta.negatable:
                group.add_argument(flag, action=action, **kwargs)
            else:
                group.add_argument(flag, action=action, const=True, **kwargs)
            continue
        if meta.multiple:
            kwargs["action"] = "append"
        if meta.choices:
            kwargs["choices"] = meta.choices
        kwargs["type"] = _converter(f, meta)
        if meta.metavar:
            kwargs["metavar"] = meta.metavar
        group.add_argument(flag, **kwargs)
    return parser


def _from_env(f: dataclasses.Field[Any], meta: Option, raw: str) -> Any:
    kind = field_kind(f)
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{env_name(f)}: expected true or false, got {raw!r}")
    if meta.multiple:
        return raw.split()
    try:
        return _converter(f, meta)(raw)
    except ValueError:
        raise ConfigError(f"{env_name(f)}: invalid value {raw!r}") from None


def parse(argv: Sequence[str] | None = None) -> tuple[Any, dict[str, Any]]:
    """Return (app, Config keyword arguments) from the command line, environment and file."""
    app, kwargs, _ = parse_command(argv)
    return app, kwargs


def parse_command(argv: Sequence[str] | None = None) -> tuple[Any, dict[str, Any], str | None]:
    """As :func:`parse`, plus the action asked for: "check", "print" or None (serve)."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.version:
        print(
            f"Running squall {__version__} with {platform.python_implementation()} "
            f"{platform.python_version()} on {platform.system()}"
        )
        raise SystemExit(0)
    found = configfile.find_file(ns.config)
    from_file = configfile.load(*found) if found else {}
    kwargs: dict[str, Any] = {}
    for f, meta in options():
        if not meta.cli:
            continue
        value = getattr(ns, f.name)
        if value is None:
            raw = os.environ.get(env_name(f))
            if raw is not None:
                value = _from_env(f, meta, raw)
        if value is None and f.name in from_file:
            value = from_file[f.name]
            if value is None:  # "none" in the file
                value = NONE
        if value is NONE:
            kwargs[f.name] = None
        elif value is not None:
            kwargs[f.name] = value
    app = ns.app or os.environ.get("SQUALL_APP") or from_file.get("app")
    if not app:
        parser.error("the APP argument is required (for example: squall main:app)")
    kwargs.setdefault("app_dir", "")
    action = "check" if ns.check_config else "print" if ns.print_config else None
    return app, kwargs, action


def main(argv: Sequence[str] | None = None) -> None:
    from squall.runner import run

    try:
        app, kwargs, action = parse_command(argv)
        config = Config(app, **kwargs)  # validate before anything starts
    except ConfigError as exc:
        print(f"squall: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if action == "check":
        print("squall: configuration OK")
        return
    if action == "print":
        values = {"app": app}
        values.update((f.name, getattr(config, f.name)) for f, meta in options() if meta.cli)
        print(configfile.dump(values), end="")
        return
    run(app, **kwargs)


def reference_markdown() -> str:
    """The option table of docs/options.md, generated so it cannot drift."""
    rows = ["| Option | Environment | Default | Meaning |", "|---|---|---|---|"]
    for f, meta in options():
        if not meta.cli:
            continue
        flag = flag_name(f, meta)
        if field_kind(f) == "bool" and meta.bool_value:
            flag = f"{flag} BOOL"
        elif field_kind(f) == "bool" and meta.negatable:
            flag = f"{flag} / --no-{flag[2:]}"
        elif meta.choices:
            flag = f"{flag} {{{','.join(meta.choices)}}}"
        default: Any = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = "built-in" if f.name == "log_config" else f.default_factory()
        shown = "-" if default in (None, [], "") else f"`{default}`"
        text = meta.help + (" *Not available yet.*" if meta.unavailable else "")
        rows.append(f"| `{flag}` | `{env_name(f)}` | {shown} | {text} |")
    return "\n".join(rows)
