"""The nnU-Net v2 fields of ``evaluate-folder``'s ``summary.json``.

nnU-Net's ``nnUNetv2_evaluate_folder`` writes ``metric_per_case`` (per case: the two file
paths and, per class, Dice, IoU and the voxel counts), ``mean`` (per class, the mean over
cases) and ``foreground_mean`` (the mean of the per-class means). duetseg writes the same
keys with the same meaning, so tools that read nnU-Net's summary read duetseg's:

- ``Dice`` = 2 TP / (2 TP + FP + FN) and ``IoU`` = TP / (TP + FP + FN) as fractions in
  [0, 1]; undefined (JSON null, where nnU-Net writes NaN) when prediction and reference are
  both empty, and then left out of the means;
- ``TP``, ``FP``, ``FN``, ``TN``, ``n_pred``, ``n_ref``: voxel counts (their means are
  means of counts);
- class keys are the class values as strings (``"1"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["NNUNET_METRICS", "CaseCounts", "nnunet_fields"]

NNUNET_METRICS = ("Dice", "IoU", "TP", "FP", "FN", "TN", "n_pred", "n_ref")


@dataclass(frozen=True)
class CaseCounts:
    """One scored case: its files, its voxel count and per class its confusion counts
    (:func:`duetseg.evaluation.overlap.confusion_counts`); a class missing from ``counts``
    is absent from both files."""

    prediction_file: Path
    reference_file: Path
    n_voxels: int
    counts: Mapping[int, Mapping[str, int]]


def _case_metrics(counts: Mapping[str, int]) -> dict[str, float | int]:
    tp, fp, fn = counts["TP"], counts["FP"], counts["FN"]
    empty = tp + fp + fn == 0
    return {
        "Dice": math.nan if empty else 2 * tp / (2 * tp + fp + fn),
        "IoU": math.nan if empty else tp / (tp + fp + fn),
        **{k: int(counts[k]) for k in NNUNET_METRICS[2:]},
    }


def _mean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else math.nan


def nnunet_fields(cases: Sequence[CaseCounts], classes: Sequence[int]) -> dict:
    """``metric_per_case``, ``mean`` and ``foreground_mean`` as nnU-Net v2 writes them.

    Args:
        cases: the scored cases, in output order.
        classes: the foreground classes scored.

    Returns:
        The three fields (NaN where undefined; written as null).
    """
    per_case = []
    for case in cases:
        metrics = {}
        for c in classes:
            counts = case.counts.get(c) or {"TP": 0, "FP": 0, "FN": 0, "TN": case.n_voxels,
                                            "n_pred": 0, "n_ref": 0}
            metrics[str(c)] = _case_metrics(counts)
        per_case.append({"metrics": metrics, "prediction_file": str(case.prediction_file),
                         "reference_file": str(case.reference_file)})
    mean = {str(c): {m: _mean([row["metrics"][str(c)][m] for row in per_case])
                     for m in NNUNET_METRICS} for c in classes}
    # as nnU-Net: the plain mean of the class means (an undefined class mean makes it so)
    foreground = {m: float(np.mean([mean[str(c)][m] for c in classes])) if classes
                  else math.nan for m in NNUNET_METRICS}
    return {"foreground_mean": foreground, "mean": mean, "metric_per_case": per_case}
