"""Keep the report files of a grid's evaluated runs in benchmarks/results (committed).

Usage: python benchmarks/archive_runs.py benchmarks/grids/cv_L2.yaml [GRID ...]
Each evaluated run ``runs/<path>`` of the grid is copied (config, splits, log, test
metrics and summary; no weights) to ``benchmarks/results/<path>``, where the results page
reads it (``python benchmarks/results_page.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import RESULTS, RUNS

from duetseg.analysis.archive import archive_grid
from duetseg.workflows.experiment import load_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grids", nargs="+", type=Path)
    args = parser.parse_args()
    for grid_file in args.grids:
        copies = archive_grid(load_grid(grid_file), RUNS, RESULTS)
        print(f"{grid_file}: {len(copies)} evaluated run(s) archived")


if __name__ == "__main__":
    main()
