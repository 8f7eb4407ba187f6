"""How should the branches' outputs be combined? Rules scored on trained DuetNet runs.

For each test case of each run (the cache geometry, the last checkpoint, no flip TTA) the
branches' softmax is combined by several rules and each result's whole-tumour Dice is
scored against the cached label:

- ``mean``: the mean softmax (the shipped ensemble);
- ``confidence``: per voxel, each branch weighted by its confidence ``max_c p``;
- ``entropy``: per voxel, each branch weighted by ``1 - H(p) / log C``;
- ``logit_mean``: the softmax of the mean log-probability (a geometric mean);
- ``branch_<x>``: one branch alone.

Usage: python benchmarks/branch_combination.py RUN_DIR [RUN_DIR ...] --name NAME
(records ``benchmarks/results/branch_combination/NAME.json``).
"""

from __future__ import annotations

import argparse

import numpy as np
from common import record_result

from duetseg.data.splits import load_splits
from duetseg.run.trained import load_trained_run, predict_probabilities

__all__ = ["combine", "RULES"]

RULES = ("mean", "confidence", "entropy", "logit_mean")


def combine(branches: list[np.ndarray], rule: str) -> np.ndarray:
    """Combine per-branch probabilities ``(C, X, Y, Z)`` by ``rule`` (see the module doc)."""
    stack = np.stack(branches)
    if rule == "mean":
        return stack.mean(0)
    if rule == "logit_mean":
        logp = np.log(np.clip(stack, 1e-8, 1.0)).mean(0)
        p = np.exp(logp - logp.max(0, keepdims=True))
        return p / p.sum(0, keepdims=True)
    if rule == "confidence":
        w = stack.max(1, keepdims=True)
    elif rule == "entropy":
        h = -(stack * np.log(np.clip(stack, 1e-8, 1.0))).sum(1, keepdims=True)
        w = 1.0 - h / np.log(stack.shape[1]) + 1e-6
    else:
        raise ValueError(f"unknown rule {rule!r}")
    return (w * stack).sum(0) / w.sum(0)


def _dice(pred: np.ndarray, true: np.ndarray) -> float:
    denom = pred.sum() + true.sum()
    return float(200.0 * np.logical_and(pred, true).sum() / denom) if denom else 100.0


def score_run(run_dir: str) -> dict[str, dict[str, float]]:
    """Per test case, the Dice (%) of every rule and branch on one run."""
    run = load_trained_run(run_dir, "last", "cpu")
    splits = load_splits(run.paths.splits_file)
    out = {}
    for case in splits["test"]:
        image = run.cache.load_image(case, mmap=False)
        true = run.cache.load_label(case, mmap=False) > 0
        probs = predict_probabilities(run, image, tta_flip=False)
        names = sorted(k for k in probs if k.startswith("branch_"))
        branches = [probs[k] for k in names]
        row = {rule: _dice(combine(branches, rule).argmax(0) > 0, true) for rule in RULES}
        row.update({k: _dice(probs[k].argmax(0) > 0, true) for k in names})
        out[case] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    per_run = {}
    for run_dir in args.runs:
        per_run[run_dir] = score_run(run_dir)
        means = {k: np.mean([c[k] for c in per_run[run_dir].values()])
                 for k in next(iter(per_run[run_dir].values()))}
        print(run_dir, " ".join(f"{k} {v:.1f}" for k, v in means.items()))
    path = record_result("branch_combination", args.name, {"runs": per_run})
    print(f"recorded {path}")


if __name__ == "__main__":
    main()
