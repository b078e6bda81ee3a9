"""Regenerate the option reference in docs/options.md from squall.config.options.Config.

Also copies the README's benchmark figures (between ``<!-- bench:begin -->`` and
``<!-- bench:end -->``) into docs/benchmarks.md, so the documentation site
shows the same numbers. A README that has an option table between
``<!-- options:begin -->`` and ``<!-- options:end -->`` gets it regenerated too
(the README now links to docs/options.md instead). ``--check`` changes nothing
and exits 1 when a file is out of date. Tests: tests/unit/test_readme.py and
tests/unit/test_docs.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from squall.cli import GROUP_TITLES, build_parser, reference_markdown
from squall.config.fields import flag_name
from squall.config.options import options

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS_OPTIONS = ROOT / "docs" / "options.md"
DOCS_BENCHMARKS = ROOT / "docs" / "benchmarks.md"
BLOCK = re.compile(r"(<!-- options:begin -->\n).*?(<!-- options:end -->)", re.S)
BENCH_BLOCK = re.compile(r"(<!-- bench:begin -->\n).*?(<!-- bench:end -->)", re.S)


def render(text: str) -> str:
    """The README with its option table (if it has one) regenerated."""
    return BLOCK.sub(lambda m: m.group(1) + reference_markdown() + "\n" + m.group(2), text)


def command_only_markdown() -> str:
    """The command line's arguments that are not Config fields (APP, --config, ...)."""
    fields = {f.name for f, _ in options()}
    rows = ["| Argument | Meaning |", "|---|---|"]
    for action in build_parser()._actions:
        if action.dest in fields:
            continue
        if action.option_strings:
            name = ", ".join(action.option_strings)
            if action.metavar:
                name += f" {action.metavar}"
            anchor = action.option_strings[-1]
        else:
            name = anchor = str(action.metavar or action.dest)
        help_text = escape_html(str(action.help))
        rows.append(f'| <a id="{anchor}"></a>`{name}` | {help_text} |')
    return "\n".join(rows)


def escape_html(row: str) -> str:
    """``<`` and ``>`` outside code spans as entities (help texts say ``<ASGI app>``)."""
    parts = row.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def docs_reference() -> str:
    """docs/options.md's reference: the option table's rows, one table per option group.

    Each row gets an anchor named after its flag, so pages can link to
    ``options.md#--timeout-keep-alive``.
    """
    header, _, *body = reference_markdown().splitlines()
    fields = [(f, meta) for f, meta in options() if meta.cli]
    groups: dict[str, list[str]] = {}
    for (f, meta), row in zip(fields, body, strict=True):
        anchor = f'| <a id="{flag_name(f, meta)}"></a>'
        groups.setdefault(meta.group, []).append(anchor + escape_html(row.removeprefix("| ")))
    titles = dict(GROUP_TITLES)
    titles.update((key, key.title()) for key in groups if key not in titles)
    parts = ["### Command line only", "", command_only_markdown()]
    for key, title in titles.items():
        if key in groups:
            parts += ["", f"### {title}", "", header, "|---|---|---|---|", *groups[key]]
    return "\n".join(parts)


def render_docs(text: str) -> str:
    """docs/options.md with its reference tables regenerated."""
    return BLOCK.sub(lambda m: m.group(1) + docs_reference() + "\n" + m.group(2), text)


def render_benchmarks(text: str, readme: str) -> str:
    """docs/benchmarks.md with the README's benchmark block copied in."""
    found = BENCH_BLOCK.search(readme)
    if found is None:
        return text
    return BENCH_BLOCK.sub(lambda m: found.group(0), text)


def outputs() -> dict[Path, tuple[str, str]]:
    """Each generated file: (current text, text it should have)."""
    readme = README.read_text()
    out = {README: (readme, render(readme))}
    for path in (DOCS_OPTIONS, DOCS_BENCHMARKS):
        text = path.read_text()
        new = render_docs(text) if path == DOCS_OPTIONS else render_benchmarks(text, readme)
        out[path] = (text, new)
    return out


def main() -> int:
    stale = [path for path, (old, new) in outputs().items() if old != new]
    if "--check" in sys.argv:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    for path, (_, new) in outputs().items():
        if path in stale:
            path.write_text(new)
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
