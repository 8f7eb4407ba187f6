"""Accuracy by how the test tumour's size compares with the labelled tumours' (issue 10).

A cross-validation fold whose labelled cases hold small tumours and whose test cases hold
large ones (seed 1, fold 1 of the 3-fold brats-dev protocol) is where every DuetNet run
failed. This script asks whether that is a pattern: for each variant, the test cases of
all its archived runs are grouped by the ratio of the case's true tumour volume to the mean
tumour volume of that run's labelled cases, and each group's mean Dice is printed with the
median signed relative volume difference (RVD, negative = prediction too small; blank for
runs evaluated before RVD existed).

Usage: python benchmarks/volume_shift.py GRID_DIR [GRID_DIR ...] [--variants V ...]
       [--append]
(GRID_DIR: e.g. benchmarks/results/cv/K3_L4_1000it_zscore_nonzero; a run's directory name is
``<variant>_f<k>`` or ``<variant>_s<seed>_f<k>``.)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from common import append_benchmark, require_shared_data

from duetseg.reporting.collect import collect_runs

__all__ = ["GROUPS", "variant_of", "tumour_volumes", "shift_rows", "table"]

# (label, lower, upper) bounds of test volume / mean labelled volume
GROUPS = (("< 0.77×", 0.0, 0.77), ("0.77–1.3×", 0.77, 1.3), ("> 1.3×", 1.3, np.inf))
RUN_NAME = re.compile(r"(?P<variant>.+?)(?:_s\d+)?_f\d+$")


def variant_of(run_name: str) -> str:
    """The variant of a run directory named ``<variant>[_s<seed>]_f<fold>`` (else the name)."""
    match = RUN_NAME.match(run_name)
    return match["variant"] if match else run_name


def tumour_volumes(data_dir: Path) -> dict[str, float]:
    """Whole-tumour volume in ml of every ``<case>/<case>_seg.nii.gz`` under ``data_dir``."""
    volumes = {}
    for seg in sorted(data_dir.glob("*/*_seg.nii.gz")):
        img = nib.load(str(seg))
        voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000.0
        volumes[seg.parent.name] = float(np.count_nonzero(np.asarray(img.dataobj))) * voxel_ml
    return volumes


def shift_rows(run_dirs: list[Path], volumes: dict[str, float]) -> dict[str, list[tuple]]:
    """Per variant, (volume ratio, Dice, RVD) of each test case on the primary output."""
    out: dict[str, list[tuple]] = {}
    for record in collect_runs(run_dirs):
        variant = variant_of(record.run_dir.name)
        labelled = np.mean([volumes[c] for c in record.splits["labeled"]])
        for row in record.rows:
            if row["output"] == record.primary_output:
                ratio = volumes[row["case"]] / labelled
                out.setdefault(variant, []).append((ratio, row["dice"], row["rvd"]))
    return out


def table(per_variant: dict[str, list[tuple]]) -> str:
    """Markdown: per variant, mean Dice and median RVD of each volume-ratio group."""
    head = "| variant | " + " | ".join(f"Dice, test {g[0]} labelled" for g in GROUPS)
    head += " | " + " | ".join(f"median RVD {g[0]}" for g in GROUPS) + " |"
    lines = [head, "|---" * (1 + 2 * len(GROUPS)) + "|"]
    for variant, values in per_variant.items():
        arr = np.asarray(values, dtype=np.float64)
        dice_cells, rvd_cells = [], []
        for _, low, high in GROUPS:
            part = arr[(arr[:, 0] >= low) & (arr[:, 0] < high)]
            dice_cells.append(f"{part[:, 1].mean():.1f} (n={len(part)})" if len(part) else "")
            rvd = part[~np.isnan(part[:, 2]), 2]
            rvd_cells.append(f"{np.median(rvd):+.0f} % (n={len(rvd)})" if len(rvd) else "")
        lines.append(f"| {variant} | " + " | ".join(dice_cells + rvd_cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grids", nargs="+", type=Path)
    parser.add_argument("--variants", nargs="*", default=None)
    parser.add_argument("--append", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    volumes = tumour_volumes(require_shared_data("brats-dev"))
    runs = [run for grid in args.grids for run in sorted(grid.iterdir())
            if (run / "eval" / "test" / "metrics.csv").is_file()
            and (args.variants is None or variant_of(run.name) in args.variants)]
    if not runs:
        sys.exit(f"no evaluated runs under {[str(g) for g in args.grids]}")
    text = table(shift_rows(runs, volumes))
    if args.append:
        grids = " ".join(str(g) for g in args.grids)
        variants = f" --variants {' '.join(args.variants)}" if args.variants else ""
        append_benchmark(f"Accuracy by test / labelled tumour volume ({grids})",
                         f"python benchmarks/volume_shift.py {grids}{variants}", text)
    else:
        print(text)


if __name__ == "__main__":
    main()
