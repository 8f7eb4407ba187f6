"""Connected components and largest-component post-processing on cross-validated predictions.

For the finished runs of the cross-validated protocol (``cv_protocol.py``) that still hold
their test predictions (``runs/cv/.../eval/test/predictions``; the archived copies in
``benchmarks/results`` keep metrics only), each predicted whole-tumour mask is scored as
predicted and after :func:`duetseg.inference.postprocess.keep_largest_component` (what
``inference.largest_component: true`` does), against the reference in ``../shared/data``.

Usage: python benchmarks/largest_component_cv.py --cv 3 --labeled 2 --iterations 1000
       --variants ours_cpssoft [--norm zscore_nonzero]
"""

from __future__ import annotations

import argparse
import re

import nibabel as nib
import numpy as np
from common import append_benchmark, require_shared_data
from cv_protocol import NORM_SCHEMES, cv_root, norm_tag
from scipy import ndimage

from duetseg.evaluation.metrics import case_metrics
from duetseg.inference.postprocess import keep_largest_component


def _mask(path) -> tuple[np.ndarray, tuple[float, ...]]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj) > 0, tuple(float(z) for z in img.header.get_zooms()[:3])


def score_runs(variant: str, root, data) -> np.ndarray:
    """Per test case: components, Dice, Dice after, ASD, ASD after (one row per case)."""
    rows = []
    name = re.compile(rf"{re.escape(variant)}(_s\d+)?_f\d+")  # <variant>[_s<seed>]_f<fold>
    runs = [r for r in root.iterdir() if name.fullmatch(r.name)]
    for run in sorted(runs):
        for path in sorted((run / "eval" / "test" / "predictions").glob("*.nii.gz")):
            case = path.name.removesuffix(".nii.gz")
            pred, spacing = _mask(path)
            ref, _ = _mask(data / case / f"{case}_seg.nii.gz")
            kept = keep_largest_component(pred.astype(np.uint8)) > 0
            before, after = case_metrics(pred, ref, spacing), case_metrics(kept, ref, spacing)
            components = ndimage.label(pred, np.ones((3, 3, 3)))[1]
            rows.append((components, before["dice"], after["dice"], before["asd"], after["asd"]))
    return np.array(rows, dtype=float).reshape(-1, 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--labeled", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--variants", nargs="+", default=["ours_cpssoft"])
    parser.add_argument("--norm", choices=NORM_SCHEMES, default=None)
    args = parser.parse_args()
    data = require_shared_data("brats-dev")
    root = cv_root(args.cv, args.labeled, args.iterations, norm_tag("", args.norm))
    lines = ["| variant | cases | components (mean / median) | Dice % | Dice % largest | "
             "ASD mm | ASD mm largest |", "|---|---|---|---|---|---|---|"]
    for variant in args.variants:
        r = score_runs(variant, root, data)
        if not len(r):
            print(f"{variant}: no runs with predictions under {root}")
            continue
        lines.append(f"| {variant} | {len(r)} | {r[:, 0].mean():.1f} / {np.median(r[:, 0]):.0f} "
                     f"| {r[:, 1].mean():.1f} | {r[:, 2].mean():.1f} | "
                     f"{np.nanmean(r[:, 3]):.2f} | {np.nanmean(r[:, 4]):.2f} |")
    command = ("python benchmarks/largest_component_cv.py --cv {} --labeled {} --iterations {} "
               "--variants {}{}").format(args.cv, args.labeled, args.iterations,
                                         " ".join(args.variants),
                                         f" --norm {args.norm}" if args.norm else "")
    append_benchmark(f"Largest component on cross-validated predictions ({args.labeled} labelled)",
                     command, "\n".join(lines),
                     "Whole tumour (label > 0) in the original 1 mm geometry, every test case "
                     "of the runs found locally with predictions; 26-connected components; "
                     "ASD: mean over cases where both masks are non-empty.")


if __name__ == "__main__":
    main()
