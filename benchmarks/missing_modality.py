"""Dice with a modality missing at prediction, for the trained runs of a grid.

For each evaluated run of the grid whose weights are here, each test case is predicted
with both modalities and with each one zero-filled (:mod:`duetseg.analysis.missing`); the
per-case Dice is kept in the run's archived copy (``eval/missing_inputs.json`` under
``benchmarks/results``), which the results page pools (``python benchmarks/results_page.py``).

Usage: python benchmarks/missing_modality.py benchmarks/grids/cv_L2_missing.yaml [GRID ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import RESULTS, RUNS

from duetseg.analysis.archive import archive_path
from duetseg.analysis.missing import recorded_missing_dice
from duetseg.run.layout import RunDir
from duetseg.workflows.experiment import load_grid, plan_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grids", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for grid_file in args.grids:
        grid = load_grid(grid_file)
        for run in plan_grid(grid):
            if not RunDir(run.run_dir).is_evaluated(grid.split):
                continue
            copy = archive_path(run.run_dir, RUNS, RESULTS)
            values = recorded_missing_dice(run.run_dir, copy)
            if values is None:
                print(f"{run.name}: no weights and no record", flush=True)
                continue
            means = ", ".join(f"{inputs} {sum(v.values()) / len(v):.1f}"
                              for inputs, v in values.items())
            print(f"{run.name}: mean Dice % {means}", flush=True)


if __name__ == "__main__":
    main()
