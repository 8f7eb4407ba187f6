"""Is the default's test over-segmentation a train/eval gap of the network? (issue 10)

For trained runs of the cross-validated protocol, the test cases are predicted as
``duetseg evaluate`` does (the run's inference settings, no flip TTA) with the network in
four states:

- ``eval``: as shipped (BatchNorm running statistics, no dropout);
- ``bn_train``: BatchNorm statistics re-estimated (cumulative average, no gradient) over
  ``--batches`` of the run's own training batches (labelled and unlabelled crops mixed, the
  training augmentations), dropout off: the statistics a perfect running average would hold;
- ``bn_test``: the same over crops of the test cases themselves (transductive; the most a
  statistics fix could reach);
- ``dropout_on``: the shipped statistics with the decoders' dropout active (one pass, fixed
  seed), the network as it made its pseudo-labels during training.

Per run and state: mean Dice (%) of the primary output against whole tumour, and the mean
predicted / true tumour volume. If the states agree, the over-segmentation is learnt, not a
mode switch.

Usage: python benchmarks/train_eval_gap.py RUN_DIR... [--batches 50] [--append]
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch
from common import append_benchmark, predicted_tumour

from duetseg.data.sampling import TwoStreamBatches
from duetseg.run.trained import TrainedRun, load_trained_run

__all__ = ["STATES", "case_scores", "reestimate_norm_statistics"]

STATES = ("eval", "bn_train", "bn_test", "dropout_on")


def case_scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """``(Dice %, predicted / true volume)`` of two boolean masks (empty truth: volume 1)."""
    inter = float((pred & truth).sum())
    total = float(pred.sum() + truth.sum())
    dice = 100.0 * 2 * inter / total if total else 100.0
    return dice, float(pred.sum()) / max(float(truth.sum()), 1.0)


def reestimate_norm_statistics(module: torch.nn.Module, forward, batches) -> int:
    """Replace every BatchNorm's running statistics by their average over ``batches``.

    Args:
        module: the network (or method) holding the norms; left in eval mode.
        forward: the call that runs it (e.g. ``method.output_probabilities``).
        batches: iterable of ``(B, C, X, Y, Z)`` inputs, one forward pass each.

    Returns:
        The number of BatchNorm layers re-estimated.
    """
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    module.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
        m.train()
    with torch.no_grad():
        for x in batches:
            forward(x)
    module.eval()
    return len(norms)


def _score_cases(run: TrainedRun, cases: list[str]) -> np.ndarray:
    rows = []
    for case in cases:
        _, pred, truth = predicted_tumour(run, case)
        rows.append(case_scores(pred, truth))
    return np.array(rows)


def _crops(run: TrainedRun, labeled: list[str], unlabeled: list[str], n: int):
    tc = run.cfg.train
    stream = TwoStreamBatches(run.cache.root, labeled, unlabeled, tc.crop_size, tc.batch_size,
                              tc.labeled_bs if unlabeled else tc.batch_size, tc.seed + 1,
                              flip=tc.flip, rot90=tc.rot90, foreground_prob=tc.foreground_prob)
    return (stream[i]["image"].to(run.device) for i in range(n))


def state_scores(run_dir: Path, n_batches: int) -> dict[str, np.ndarray]:
    """State -> (cases, 2) array of (Dice %, volume ratio) on the run's test cases."""
    run = load_trained_run(run_dir, "last", "cpu")
    splits = json.loads((run_dir / "splits.json").read_text())
    shipped = copy.deepcopy(run.method.state_dict())
    forward = run.method.output_probabilities  # the call the evaluation makes
    out = {"eval": _score_cases(run, splits["test"])}
    for state, (labeled, unlabeled) in {"bn_train": (splits["labeled"], splits["unlabeled"]),
                                        "bn_test": (splits["test"], [])}.items():
        run.method.load_state_dict(shipped)
        reestimate_norm_statistics(run.method, forward,
                                   _crops(run, labeled, unlabeled, n_batches))
        out[state] = _score_cases(run, splits["test"])
    run.method.load_state_dict(shipped)
    torch.manual_seed(0)
    for m in run.method.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.train()
    out["dropout_on"] = _score_cases(run, splits["test"])
    run.method.eval()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--batches", type=int, default=50, help="batches per re-estimate")
    parser.add_argument("--append", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = ["| run | state | Dice (%) | volume / true | Dice per case (%) |",
             "|---|---|---|---|---|"]
    for run_dir in args.runs:
        for state, rows in state_scores(run_dir, args.batches).items():
            lines.append(f"| {run_dir.parent.name}/{run_dir.name} | {state} | "
                         f"{rows[:, 0].mean():.1f} | {rows[:, 1].mean():.2f} | "
                         + " ".join(f"{d:.1f}" for d in rows[:, 0]) + " |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    if args.append:
        append_benchmark("Train/eval gap of the network on the test cases",
                         "python benchmarks/train_eval_gap.py " + " ".join(
                             [*(str(r) for r in args.runs), "--batches", str(args.batches)]),
                         table, notes="Whole-tumour Dice of the primary output, last "
                                      "checkpoint, no flip TTA; volume: predicted / true "
                                      "tumour voxels, mean over the test cases.")
    else:
        print(table)


if __name__ == "__main__":
    main()
