"""Where does a run over-segment: at the tumour's rim, or away from it? (issue 10)

For trained runs of the cross-validated protocol, each test case is predicted as
``duetseg evaluate`` does (last checkpoint, the run's inference settings, no flip TTA) and
the primary output's false-positive tumour voxels are split by their distance to the true
tumour: ``rim`` within ``--rim`` voxels (a boundary drawn a little wide), ``remote`` beyond
(tissue called tumour that is not next to it). Beside them: the predicted connected
components and the mean intensity of the remote false positives, of the true tumour and of
the whole brain in each modality of the cache (z-scored caches: units of the brain's std).

Usage: python benchmarks/false_positive_sites.py RUN_DIR... [--rim 2] [--append]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from common import append_benchmark, predicted_tumour
from scipy import ndimage

from duetseg.run.trained import load_trained_run

__all__ = ["false_positive_sites"]


def false_positive_sites(pred: np.ndarray, truth: np.ndarray, rim: float) -> dict[str, np.ndarray]:
    """Masks of ``pred``'s false positives within / beyond ``rim`` voxels of ``truth``.

    Args:
        pred: boolean predicted tumour.
        truth: boolean true tumour (empty: every false positive is remote).
        rim: distance in voxels (Euclidean, to the nearest true tumour voxel).

    Returns:
        ``{"rim": mask, "remote": mask}``.
    """
    fp = pred & ~truth
    distance = ndimage.distance_transform_edt(~truth) if truth.any() else np.full(
        truth.shape, np.inf)
    return {"rim": fp & (distance <= rim), "remote": fp & (distance > rim)}


def _mean(values: np.ndarray) -> str:
    return f"{values.mean():.2f}" if values.size else "–"


def run_rows(run_dir: Path, rim: float) -> list[str]:
    """One markdown row per test case of ``run_dir``."""
    run = load_trained_run(run_dir, "last", "cpu")
    names = run.cache.modalities
    rows = []
    for case in json.loads((run_dir / "splits.json").read_text())["test"]:
        image, pred, truth = predicted_tumour(run, case)
        sites = false_positive_sites(pred, truth, rim)
        brain = np.any(image != 0, axis=0)
        means = " / ".join(f"{m} {_mean(image[i][sites['remote']])}, {_mean(image[i][truth])}, "
                           f"{_mean(image[i][brain])}" for i, m in enumerate(names))
        rows.append(f"| {run_dir.name} | {case} | {int(truth.sum())} | {int(pred.sum())} | "
                    f"{int((pred & truth).sum())} | {int(sites['rim'].sum())} | "
                    f"{int(sites['remote'].sum())} | {ndimage.label(pred)[1]} | {means} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--rim", type=float, default=2.0, help="rim width in voxels")
    parser.add_argument("--append", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = ["| run | case | true | predicted | TP | FP rim | FP remote | components "
             "| mean intensity: remote FP, tumour, brain |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run_dir in args.runs:
        lines += run_rows(run_dir, args.rim)
    table = "\n".join(lines)
    if not args.append:
        print(table)
        return
    append_benchmark("False positives: rim or remote", "python benchmarks/false_positive_sites.py "
                     + " ".join([*(str(r) for r in args.runs), "--rim", f"{args.rim:g}"]), table,
                     notes=f"Tumour voxels (whole tumour, primary output, cache geometry); rim: "
                           f"within {args.rim:g} voxels of the true tumour.")


if __name__ == "__main__":
    main()
