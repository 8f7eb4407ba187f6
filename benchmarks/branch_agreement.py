"""Does a consistency term pull the stronger branch towards the weaker one? (per-case check)

For each (seed, fold, test case) of a cross-validated method and its control (``ours_w0``:
same batches, unsupervised weight 0) this compares the Dice of the two branches: how far
apart they are in each arm, and whether the T2 (second) branch's gain over the control
depends on which branch was better in the control. Under cross pseudo supervision each
branch learns the other's argmax, so where the control's T1ce branch was the worse one the
T2 branch is taught its mistakes.

Usage: python benchmarks/branch_agreement.py --cv 3 --labeled 2 --iterations 1000
           --method ours_cps --control ours_w0 --seeds 0 1
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from common import append_benchmark
from cv_protocol import cv_root, cv_run_dir
from scipy.stats import spearmanr

from duetseg.reporting.collect import collect_runs

__all__ = ["branch_dice"]

OUTPUTS = ("branch_a", "branch_b", "ensemble")


def branch_dice(method: str, control: str, folds: int, labeled: int, iterations: int,
                seeds: list[int]) -> np.ndarray:
    """``(n, 6)`` Dice: method's branch_a, branch_b, ensemble, then the control's, per pair."""
    root = cv_root(folds, labeled, iterations)
    rows = []
    for seed in seeds:
        for fold in range(folds):
            dirs = [cv_run_dir(root, name, fold, seed) for name in (method, control)]
            if not all((d / "eval" / "test" / "metrics.csv").exists() for d in dirs):
                continue
            mine, theirs = collect_runs(dirs)
            values = [run.case_values("dice", o) for run in (mine, theirs) for o in OUTPUTS]
            rows += [[v[case] for v in values] for case in values[0]]
    return np.asarray(rows, dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--labeled", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--method", default="ours_cps")
    parser.add_argument("--control", default="ours_w0")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    d = branch_dice(args.method, args.control, args.cv, args.labeled, args.iterations,
                    args.seeds)
    if not len(d):
        sys.exit("no pair of evaluated runs found")
    gain_t2 = d[:, 1] - d[:, 4]
    gain_ens = d[:, 2] - d[:, 5]
    t1ce_worse = d[:, 3] < d[:, 4]  # in the control
    rho, p = spearmanr(gain_t2, d[:, 3] - d[:, 4])
    table = "\n".join([
        "| quantity | value |", "|---|---|",
        f"| pairs (seed, fold, case) | {len(d)} |",
        f"| median abs(branch_a − branch_b) Dice, {args.method} | "
        f"{np.median(abs(d[:, 0] - d[:, 1])):.1f} |",
        f"| median abs(branch_a − branch_b) Dice, {args.control} | "
        f"{np.median(abs(d[:, 3] - d[:, 4])):.1f} |",
        f"| branch_b gain, cases where the control's branch_a < branch_b | "
        f"{gain_t2[t1ce_worse].mean():+.1f} (n {t1ce_worse.sum()}) |",
        f"| branch_b gain, the other cases | "
        f"{gain_t2[~t1ce_worse].mean():+.1f} (n {(~t1ce_worse).sum()}) |",
        f"| ensemble gain, the same two groups | {gain_ens[t1ce_worse].mean():+.1f} / "
        f"{gain_ens[~t1ce_worse].mean():+.1f} |",
        f"| Spearman ρ (branch_b gain, control's branch_a − branch_b) | {rho:.2f} (p {p:.3g}) |",
    ])
    command = ("python benchmarks/branch_agreement.py " + " ".join(sys.argv[1:])).strip()
    append_benchmark(f"Branch agreement: {args.method} vs {args.control} "
                     f"(K{args.cv}, {args.labeled} labelled, {args.iterations} it)", command,
                     table, "Gains in Dice points, per (seed, fold, test case) pair; "
                     "branch_a reads T1ce, branch_b T2.")


if __name__ == "__main__":
    main()
