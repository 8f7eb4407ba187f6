"""Does a run still see tumours in its *unlabelled* training cases? (the collapse check)

A consistency term between branches can be lowered by agreeing on "background everywhere"
in the cases without labels. On the cross-validated protocol that is what ``ours`` did
(BENCHMARKS.md, "Why the unlabelled cases hurt"): its predicted tumour volume on most
unlabelled training cases fell to almost nothing while the weight-0 control, trained on the
same batches, kept finding them. This module measures it for finished runs: the predicted
foreground volume (primary output, cache geometry) over the true one, per unlabelled case.

Usage: python benchmarks/collapse_check.py RUN [RUN ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

__all__ = ["collapse_rows", "volume_ratios"]

COLLAPSED = 0.1  # a case counts as lost when less than a tenth of its tumour volume is found


def volume_ratios(run_dir: Path) -> list[float]:
    """Predicted / true foreground volume on each unlabelled training case of ``run_dir``."""
    from duetseg.run.trained import load_trained_run, predict_probabilities

    run = load_trained_run(run_dir, "last", "cpu")
    cases = json.loads((Path(run_dir) / "splits.json").read_text())["unlabeled"]
    ratios = []
    for case in cases:
        label = run.cache.load_label(case, mmap=False) > 0
        with torch.no_grad():
            probs = predict_probabilities(run, run.cache.load_image(case, mmap=False))
        pred = probs[run.method.primary_output][1:].sum(0) > 0.5
        ratios.append(float(pred.sum()) / max(float(label.sum()), 1.0))
    return ratios


def collapse_rows(run_dirs: list[Path]) -> list[str]:
    """Markdown rows: run, median volume ratio, unlabelled cases found with < 10 %."""
    lines = ["| run | unlabelled cases | median predicted / true volume | cases < 10 % found |",
             "|---|---|---|---|"]
    for run_dir in run_dirs:
        ratios = volume_ratios(run_dir)
        lost = sum(r < COLLAPSED for r in ratios)
        lines.append(f"| {Path(run_dir).name} | {len(ratios)} | {np.median(ratios):.2f} | "
                     f"{lost} |")
        print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    torch.set_num_threads(2)
    print("\n".join(collapse_rows([Path(p) for p in sys.argv[1:]])))
