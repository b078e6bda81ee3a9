"""Draw a bench/run.py report as a chart (PNG, or SVG/PDF by the target's suffix).

The top panel has, per scenario and server, the throughput ratio to the
baseline (Uvicorn; Hypercorn for http2) on a logarithmic axis, bars growing
from 1x; the bottom panel, when the report has the ``idle`` scenario, the
server's resident memory per idle keep-alive connection. bench/run.py calls
this after each run; it also works on an older report. Needs matplotlib
(in the ``bench`` extra).

usage: .venv/bin/python bench/chart.py [REPORT [TARGET ...]]
       (default: bench/results/latest.md -> bench/results/chart.png and chart.svg)
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ROOT = Path(__file__).resolve().parent.parent
COLORS = {
    "squall": "#1f6feb",
    "uvicorn": "#8b949e",
    "granian": "#d29922",
    "hypercorn": "#a371f7",
    "gunicorn": "#2da44e",
    "gunicorn-uvicorn": "#1b7c83",
}
OTHER_COLORS = ["#cf222e", "#bf8700", "#6e7781", "#8250df"]


@dataclass
class Row:
    scenario: str
    server: str
    ratio: float | None
    baseline: str
    kib: float | None
    p99: float | None


def number(cell: str) -> float | None:
    match = re.match(r"\s*([\d.]+)", cell)
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def read(report: Path) -> tuple[dict[str, str], list[Row]]:
    """The report's ``- key: value`` header lines and its table rows (old or new layout)."""
    meta: dict[str, str] = {}
    rows: list[Row] = []
    columns: list[str] = []
    for line in report.read_text().splitlines():
        if line.startswith("- ") and ": " in line and not columns:
            key, value = line[2:].split(": ", 1)
            meta[key] = value
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == ["scenario", "server"]:
            columns = cells
            continue
        if not columns or len(cells) != len(columns):
            continue
        cell = dict(zip(columns, cells, strict=True))
        ratio_cell = next((v for k, v in cell.items() if k.startswith("ratio")), "")
        base = re.search(r"vs ([\w-]+)", ratio_cell)
        rows.append(
            Row(
                scenario=cell["scenario"],
                server=cell["server"],
                ratio=number(ratio_cell),
                baseline=base.group(1) if base else "uvicorn",
                kib=number(cell.get("KiB/conn", "")),
                p99=number(cell.get("p99 ms", "")),
            )
        )
    return meta, rows


def draw_speed(ax: Axes, rows: list[Row], servers: list[str], colors: dict[str, str]) -> None:
    """Throughput ratios, bars growing from 1x on a log2 axis, one group per scenario."""
    from matplotlib.ticker import FixedLocator, NullLocator

    y, ticks, labels = 0.0, [], []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        group = [r for r in rows if r.scenario == scenario]
        group.sort(key=lambda r: servers.index(r.server))
        start = y
        for row in group:
            ratio = row.ratio or 1.0
            ax.barh(y, ratio - 1, left=1, height=0.8, color=colors[row.server])
            if row.server == row.baseline:
                label = f" {row.server} = 1 "
                ax.plot(1, y, marker="|", markersize=9, color=colors[row.server])
            else:
                label = f" {row.server} {ratio:.2f}x "
            right = ratio >= 1
            ax.text(ratio, y, label, va="center", ha="left" if right else "right", fontsize=8)
            y += 1
        ticks.append((start + y - 1) / 2)
        base = group[0].baseline
        labels.append(scenario if base == "uvicorn" else f"{scenario}\n(vs {base})")
        y += 0.8
    values = [r.ratio or 1.0 for r in rows]
    # room for the labels beside the bars
    low = 2 ** math.floor(math.log2(min([*values, 1.0]) / 3))
    high = 2 ** math.ceil(math.log2(max([*values, 1.0]) * 3))
    ax.set_xscale("log", base=2)
    ax.set_xlim(low, high)
    marks = [2.0**e for e in range(int(math.log2(low)), int(math.log2(high)) + 1)]
    ax.xaxis.set_major_locator(FixedLocator(marks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{m:g}x" if m >= 1 else f"1/{1 / m:g}x" for m in marks])
    ax.axvline(1, color="black", linewidth=1)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels)
    ax.set_ylim(y - 0.5, -0.7)
    ax.set_title(
        "Throughput relative to Uvicorn (Hypercorn for http2); right of the line is faster",
        fontsize=11,
        pad=26,
    )


def draw_idle(
    ax: Axes, rows: list[Row], servers: list[str], colors: dict[str, str], count: str
) -> None:
    """Resident memory per idle connection, with the ratio and the active client's p99."""
    rows = sorted(rows, key=lambda r: servers.index(r.server))
    for i, row in enumerate(rows):
        kib = row.kib or 0.0
        ax.barh(i, kib, height=0.7, color=colors[row.server])
        ratio = ""
        if row.ratio is not None and row.server != row.baseline:
            ratio = f" ({row.ratio:.2f}x {row.baseline})"
        p99 = f", active client p99 {row.p99:.2f} ms" if row.p99 is not None else ""
        ax.text(kib, i, f" {kib:.2f} KiB{ratio}{p99}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r.server for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, max((r.kib or 0.0) for r in rows) * 1.9 or 1.0)
    ax.set_xlabel("KiB of resident memory per idle connection (lower is better)")
    match = re.match(r"(\d+)", count)
    many = f"{int(match.group(1)):,} " if match else ""
    ax.set_title(f"{many}idle keep-alive connections", fontsize=11, pad=26)


def draw(meta: dict[str, str], rows: list[Row], targets: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in an SVG
    speed = [r for r in rows if r.scenario != "idle" and r.ratio]
    idle = [r for r in rows if r.scenario == "idle" and r.kib is not None]
    servers = list(dict.fromkeys(r.server for r in rows))
    extra = iter(OTHER_COLORS * 4)
    colors = {s: COLORS.get(s) or next(extra) for s in servers}
    heights = []
    if speed:
        groups = len({r.scenario for r in speed})
        heights.append(0.18 * len(speed) + 0.15 * groups + 1.3)
    if idle:
        heights.append(0.3 * len(idle) + 1.3)
    fig, axes = plt.subplots(
        len(heights),
        1,
        figsize=(10, sum(heights) + 0.9),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
        layout="constrained",
    )
    panels = [a[0] for a in axes]
    python = meta.get("servers' python") or meta.get("python") or "?"
    python = python.split(",")[0].split(" (")[0]
    date = meta.get("date", "")[:10]
    fig.suptitle(
        f"Squall benchmark, one worker per server, Python {python}, {date}",
        fontsize=13,
        fontweight="bold",
    )
    if speed:
        draw_speed(panels[0], speed, servers, colors)
    if idle:
        draw_idle(panels[-1], idle, servers, colors, meta.get("idle", ""))
    for ax in panels:
        ax.grid(axis="x", color="#dddddd", linewidth=0.8)
        ax.set_axisbelow(True)
    handles = [Rectangle((0, 0), 1, 1, color=colors[s]) for s in servers]
    panels[0].legend(
        handles,
        servers,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(servers),
        fontsize=9,
        frameon=False,
        handlelength=1.2,
    )
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=110)
        print(f"wrote {target}")
    plt.close(fig)


def main() -> int:
    report = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench/results/latest.md"
    targets = [Path(p) for p in sys.argv[2:]] or [
        ROOT / "bench/results/chart.png",
        ROOT / "bench/results/chart.svg",
    ]
    meta, rows = read(report)
    if not any(r.ratio or r.kib is not None for r in rows):
        print(f"no results in {report}", file=sys.stderr)
        return 1
    try:
        draw(meta, rows, targets)
    except ImportError as exc:
        print(f"no chart: {exc} (pip install -e '.[bench]')", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
