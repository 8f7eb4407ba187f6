"""Where do the pseudo-labels put tumour: in it, at its rim, or away from it? (issue 10 lead)

The default's test false positives lie mostly away from the tumour (``false_positive_sites.py``).
This looks one step earlier, at what the unlabelled crops are taught. For trained runs of the
cross-validated protocol, uniformly placed training-size crops of the run's unlabelled cases
(``pseudo_volume.crop_predictions``) go through the network; each branch's prediction is turned
into a pseudo-label twice, as ``pseudo_prior: off`` (argmax) and as the default ``soft``
(:func:`duetseg.methods.prior_guard.soft_volume_shift`: each crop keeps its expected volume),
and its tumour voxels are split by their distance to the case's true tumour (the benchmark
data label every case): ``true`` (in it), ``rim`` (within ``--rim`` voxels), ``remote``.
Crops without true tumour are counted apart: there any soft pseudo-tumour is remote and comes
from the softmax's tail alone.

Usage: python benchmarks/pseudo_label_sites.py RUN_DIR... [--crops 4] [--rim 2] [--append]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import append_benchmark
from pseudo_volume import crop_predictions
from scipy import ndimage

from duetseg.methods.prior_guard import soft_volume_shift
from duetseg.run.trained import load_trained_run

__all__ = ["pseudo_labels", "site_counts"]

KINDS = ("argmax", "soft")


def pseudo_labels(prob: np.ndarray) -> dict[str, np.ndarray]:
    """``argmax`` and ``soft`` tumour masks of one crop's (C, X, Y, Z) softmax."""
    logits = torch.from_numpy(np.log(np.clip(prob, 1e-8, None)))[None]
    shifted = soft_volume_shift([logits])[0][0]
    return {"argmax": prob.argmax(0) > 0, "soft": shifted.argmax(0).numpy() > 0}


def site_counts(mask: np.ndarray, distance: np.ndarray, rim: float) -> np.ndarray:
    """``[true, rim, remote]`` voxels of ``mask`` by ``distance`` to the true tumour (0 in it)."""
    return np.array([(mask & (distance == 0)).sum(), (mask & (distance > 0) & (distance <= rim))
                     .sum(), (mask & (distance > rim)).sum()], dtype=np.float64)


def run_sites(run_dir: Path, n_crops: int, rim: float) -> dict[tuple[str, str, bool], np.ndarray]:
    """(output, kind, crop has tumour) -> summed ``[true, rim, remote, crops, true tumour]``."""
    run = load_trained_run(run_dir, "last", "cpu")
    totals: dict[tuple[str, str, bool], np.ndarray] = {}
    distance: dict[str, np.ndarray] = {}
    for _, case, box, probs in crop_predictions(run, run_dir, n_crops, splits=("unlabeled",)):
        if case not in distance:
            truth = run.cache.load_label(case, mmap=False) > 0
            distance = {case: ndimage.distance_transform_edt(~truth) if truth.any()
                        else np.full(truth.shape, np.inf)}
        near = distance[case][box]
        tumour = int((near == 0).sum())
        for name, prob in probs.items():
            for kind, mask in pseudo_labels(prob).items():
                key = (name, kind, tumour > 0)
                row = np.concatenate([site_counts(mask, near, rim), [1.0, tumour]])
                totals[key] = totals.get(key, 0.0) + row
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--crops", type=int, default=4, help="crops per unlabelled case")
    parser.add_argument("--rim", type=float, default=2.0, help="rim width in voxels")
    parser.add_argument("--append", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = ["| run | output | crops | n | true tumour | pseudo-label | in tumour | rim | remote |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run_dir in args.runs:
        for (name, kind, has), t in sorted(run_sites(run_dir, args.crops, args.rim).items(),
                                           key=lambda kv: (kv[0][0], not kv[0][2], kv[0][1])):
            lines.append(f"| {run_dir.name} | {name} | {'with' if has else 'without'} tumour "
                         f"| {int(t[3])} | {int(t[4])} | {kind} | {int(t[0])} | {int(t[1])} "
                         f"| {int(t[2])} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    if args.append:
        append_benchmark("Where the pseudo-labels put tumour, per crop",
                         "python benchmarks/pseudo_label_sites.py " + " ".join(
                             [*(str(r) for r in args.runs), "--crops", str(args.crops),
                              "--rim", f"{args.rim:g}"]),
                         table, notes="Voxels summed over the crops (2 mm cache grid); rim: "
                                      f"within {args.rim:g} voxels of the case's true tumour.")
    else:
        print(table)


if __name__ == "__main__":
    main()
