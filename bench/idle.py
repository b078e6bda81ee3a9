"""Idle keep-alive connections on their own: ``bench/run.py --scenarios idle`` under
its former command line.

The scenario itself (server memory per idle connection, and the latency of an
active client meanwhile) is part of bench/run.py, whose default run includes it;
this writes its report to bench/results/idle.md and its chart to
bench/results/idle.png instead of replacing the full run's.

usage: python bench/idle.py [--connections 10000] [--rounds 2] [--servers squall,uvicorn]
       (other options are passed on to bench/run.py, e.g. --python 3.12)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--servers", default="squall,uvicorn")
    opts, rest = parser.parse_known_args()
    cmd = [sys.executable, str(BENCH / "run.py"), "--scenarios", "idle"]
    cmd += ["--idle-connections", str(opts.connections), "--rounds", str(opts.rounds)]
    cmd += ["--servers", opts.servers, "--out", str(BENCH / "results" / "idle.md")]
    cmd += ["--chart", str(BENCH / "results" / "idle.png"), *rest]
    return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
