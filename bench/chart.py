"""Draw the ratios of a bench/run.py report as an SVG bar chart (no dependencies).

usage: .venv/bin/python bench/chart.py [bench/results/latest.md] [bench/results/chart.svg]
"""

from __future__ import annotations

import re
import sys
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLORS = {"squall": "#1f6feb", "uvicorn": "#8b949e", "granian": "#d29922", "hypercorn": "#a371f7"}
ROW = re.compile(r"^\| (\w+) \| (\w+) \| [\d.na/]+ \| [\d.na/]+ \| ([\d.]+)(?: vs (\w+))? \|")


def read(report: Path) -> list[tuple[str, str, float, str]]:
    rows = []
    for line in report.read_text().splitlines():
        match = ROW.match(line)
        if match:
            scenario, server, ratio, base = match.groups()
            rows.append((scenario, server, float(ratio), base or "uvicorn"))
    return rows


def svg(rows: list[tuple[str, str, float, str]]) -> str:
    scenarios = list(dict.fromkeys(r[0] for r in rows))
    servers = list(dict.fromkeys(r[1] for r in rows))
    top = max(r[2] for r in rows)
    bar, gap, left, width = 14, 10, 150, 520
    height = 60 + len(scenarios) * (len(servers) * bar + gap) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" '
        f'height="{height}" font-family="sans-serif" font-size="12">',
        '<text x="10" y="22" font-size="15" font-weight="bold">'
        "Throughput relative to the baseline (1.0 = Uvicorn; Hypercorn for http2)</text>",
    ]
    y = 45
    for scenario in scenarios:
        base = next(r[3] for r in rows if r[0] == scenario)
        out.append(f'<text x="10" y="{y + 12}">{escape(scenario)} (vs {escape(base)})</text>')
        for server in servers:
            ratio = next((r[2] for r in rows if r[0] == scenario and r[1] == server), None)
            if ratio is None:
                continue
            length = max(1.0, ratio / top * width)
            color = COLORS.get(server, "#444")
            out.append(
                f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar - 2}" '
                f'fill="{color}"/><text x="{left + length + 4:.1f}" y="{y + bar - 4}">'
                f"{escape(server)} {ratio:.2f}</text>"
            )
            y += bar
        y += gap
    one = left + 1 / top * width
    out.append(
        f'<line x1="{one:.1f}" y1="40" x2="{one:.1f}" y2="{y}" stroke="#000" '
        'stroke-dasharray="3,3"/>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> int:
    report = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench/results/latest.md"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "bench/results/chart.svg"
    rows = read(report)
    if not rows:
        print(f"no results in {report}", file=sys.stderr)
        return 1
    target.write_text(svg(rows))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
