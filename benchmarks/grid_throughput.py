"""Finished, evaluated runs per hour of ``duetseg experiment --parallel N``, for several N.

For each N a fresh grid of N runs (``ours`` on the 2 mm real BraTS cache, seeds 0..N-1,
``--iterations`` each, evaluated on the test split at the last checkpoint) is run with
``duetseg experiment GRID --parallel N`` in a subprocess and timed from start to exit, so
process start, CUDA/thread set-up, training, evaluation and the parent's polling all count.
Runs per hour = N / wall time. The runs are deleted afterwards (``--keep`` keeps them).

Usage: python benchmarks/grid_throughput.py [--parallel 1 2] [--iterations 200]
       [--cache local_data/brats_2mm]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from common import REPO, record_tables


def time_grid(cache: Path, parallel: int, iterations: int, out: Path) -> float:
    """Wall seconds of one grid of ``parallel`` runs at ``--parallel parallel``."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    grid = {"cache": str(cache.resolve()), "base": "cpu_small", "out": str(out / "runs"),
            "methods": ["ours"], "labeled": [2], "seeds": list(range(parallel)),
            "checkpoint": "last",
            "overrides": [f"train.max_iterations={iterations}"]}
    grid_file = out / "grid.yaml"
    grid_file.write_text(yaml.safe_dump(grid))
    cmd = [sys.executable, "-m", "duetseg", "experiment", str(grid_file), "--parallel",
           str(parallel), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parallel", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=REPO / "local_data" / "brats_2mm")
    parser.add_argument("--keep", action="store_true", help="keep the runs")
    args = parser.parse_args()
    if not (args.cache / "dataset.json").exists():
        sys.exit(f"no finished cache at {args.cache} (duetseg prepare makes it, "
                 "see benchmarks/grids/cv_L2.yaml)")
    lines = ["| N at once | runs | wall s | s per run | runs / hour | vs N = 1 |",
             "|---|---|---|---|---|---|"]
    first = None
    for n in args.parallel:
        out = REPO / "runs" / "grid_throughput" / f"N{n}"
        seconds = time_grid(args.cache, n, args.iterations, out)
        per_hour = n * 3600 / seconds
        first = first or per_hour
        lines.append(f"| {n} | {n} | {seconds:.0f} | {seconds / n:.1f} | {per_hour:.1f} | "
                     f"{per_hour / first:.2f}× |")
        print(lines[-1], flush=True)
        if not args.keep:
            shutil.rmtree(out)
    record_tables(
        "speed_gpu" if torch.cuda.is_available() else "speed_cpu", "runs_per_hour",
        "Runs per hour of `duetseg experiment --parallel N`", "\n".join(lines),
        (f"Each N: a fresh grid of N `ours` runs (cpu_small on the 2 mm real BraTS "
               f"cache, 2 labelled, seeds 0..N-1, {args.iterations} iterations, test split "
               f"evaluated at the last checkpoint in the original 1 mm geometry), timed "
               f"from the command's start to its exit; the children share the machine as "
               f"`duetseg experiment` sets it up (cores / N threads each)."))


if __name__ == "__main__":
    main()
