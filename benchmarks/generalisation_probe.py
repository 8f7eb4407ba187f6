"""Where does a run fail on cases it was not trained on, and is the intensity scale the cause?

For finished runs, per group of cases (its labelled, unlabelled and test cases): recall and
precision of the primary output's whole-tumour mask in the cache geometry, and how many
cases get an empty prediction. Then the same cases once more after a per-case linear remap
of each modality's non-zero (brain) voxels to the mean and standard deviation of the run's
labelled cases ("matched"): if Dice rises, the network learnt absolute intensity levels of
its few labelled cases rather than contrasts, which a per-case z-score normalisation or
intensity augmentation addresses.

Usage: python benchmarks/generalisation_probe.py RUN [RUN ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from common import append_benchmark

from duetseg.run.trained import load_trained_run, predict_probabilities

__all__ = ["brain_stats", "match_brain_stats", "probe_run"]

GROUPS = ("labeled", "unlabeled", "test")


def brain_stats(image: np.ndarray) -> list[tuple[float, float]]:
    """(mean, std) of each channel's non-zero voxels."""
    out = []
    for channel in image:
        brain = channel[channel != 0]
        out.append((float(brain.mean()), float(brain.std())) if brain.size else (0.0, 1.0))
    return out


def match_brain_stats(image: np.ndarray, target: list[tuple[float, float]]) -> np.ndarray:
    """``image`` with each channel's non-zero voxels remapped to ``target``'s mean and std."""
    out = np.array(image, dtype=np.float32)
    for c, ((m, s), (tm, ts)) in enumerate(zip(brain_stats(image), target, strict=True)):
        brain = out[c] != 0
        out[c][brain] = (out[c][brain] - m) / max(s, 1e-6) * ts + tm
    return out


def _scores(run, image: np.ndarray, label: np.ndarray) -> tuple[float, float, float, bool]:
    with torch.no_grad():
        probs = predict_probabilities(run, image)[run.method.primary_output]
    pred = probs[1:].sum(0) > 0.5
    inter = float((pred & label).sum())
    n_pred, n_true = float(pred.sum()), float(label.sum())
    dice = 2 * inter / max(n_pred + n_true, 1.0)
    return dice, inter / max(n_true, 1.0), inter / max(n_pred, 1.0), n_pred == 0


def probe_run(run_dir: Path) -> dict[str, dict[str, float]]:
    """Per group: mean Dice, recall, precision (raw), empty predictions, mean Dice matched."""
    run = load_trained_run(run_dir, "last", "cpu")
    splits = json.loads((run_dir / "splits.json").read_text())
    labelled = [brain_stats(run.cache.load_image(c, mmap=False)) for c in splits["labeled"]]
    target = [tuple(np.mean([s[m] for s in labelled], axis=0)) for m in range(len(labelled[0]))]
    result = {}
    for group in GROUPS:
        rows = []
        for case in splits[group]:
            image = run.cache.load_image(case, mmap=False)
            label = run.cache.load_label(case, mmap=False) > 0
            dice, recall, precision, empty = _scores(run, image, label)
            matched = _scores(run, match_brain_stats(image, target), label)[0]
            rows.append((dice, recall, precision, empty, matched))
            print(f"{run_dir.name} {group} {case}: Dice {100 * dice:.1f} recall "
                  f"{100 * recall:.1f} precision {100 * precision:.1f} matched "
                  f"{100 * matched:.1f}", flush=True)
        a = np.array(rows, dtype=float)
        result[group] = {"n": len(rows), "dice": 100 * a[:, 0].mean(),
                         "recall": 100 * a[:, 1].mean(), "precision": 100 * a[:, 2].mean(),
                         "empty": int(a[:, 3].sum()), "matched": 100 * a[:, 4].mean()}
    return result


def main() -> None:
    torch.set_num_threads(1)
    runs = [Path(p) for p in sys.argv[1:]]
    if not runs:
        raise SystemExit(__doc__)
    rows = ["| run | cases | n | Dice | recall | precision | empty predictions | Dice, brain "
            "statistics matched |", "|---|---|---|---|---|---|---|---|"]
    for run_dir in runs:
        for group, r in probe_run(run_dir).items():
            rows.append(f"| {run_dir.name} | {group} | {r['n']} | {r['dice']:.1f} | "
                        f"{r['recall']:.1f} | {r['precision']:.1f} | {r['empty']} | "
                        f"{r['matched']:.1f} |")
    append_benchmark("Where runs fail: labelled, unlabelled and test cases",
                     "python benchmarks/generalisation_probe.py " + " ".join(sys.argv[1:]),
                     "\n".join(rows),
                     "Whole tumour, primary output, cache geometry (2 mm), last checkpoint; "
                     "means over the cases of each group. Matched: each modality's non-zero "
                     "voxels linearly remapped to the mean and std of the run's labelled "
                     "cases before prediction.")


if __name__ == "__main__":
    main()
