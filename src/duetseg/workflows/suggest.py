"""``duetseg suggest``: rank a run's unlabelled training cases by branch disagreement.

A trained run predicts every unlabelled training case of its splits from its own cache and
the cases are ranked by how little the run can be trusted there:

* ``disagreement``: for methods with one branch per modality, the mean over the predicted
  foreground of ``max_i p_i - min_i p_i`` (the branches' foreground probabilities, the map of
  ``duetseg predict --save-disagreement``); for single-network methods the mean normalised
  entropy of the prediction;
* ``entropy``: mean normalised entropy of the primary output over the same voxels;
* ``foreground_voxels`` / ``volume_ml``: size of the primary output's mask (cache grid).

The foreground is the union of every output's mask, so a lesion found by one branch only
counts. A case where no output finds foreground scores 0 and ``foreground_voxels`` 0 shows
it (review those separately: either a healthy scan or a missed lesion). The ranking is
highest ``disagreement`` first; the CSV is written atomically.

What the ranking was measured to do (docs/suggest.md): on real BraTS cases whose labels
were known, high disagreement went with poor segmentation, so the ranking points at the
cases whose predictions to *review* first. Adding the top-ranked cases to the labelled set
and retraining did not beat adding randomly chosen cases, so it is not a way to choose the
cases to contour for training.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from duetseg.atomic import save_text
from duetseg.data.splits import load_splits
from duetseg.errors import ConfigError
from duetseg.progress import progress_bar
from duetseg.run.layout import RunDir
from duetseg.run.trained import load_trained_run, predict_probabilities
from duetseg.workflows.disagreement import disagreement_map, normalised_entropy

__all__ = ["SUGGEST_COLUMNS", "score_case", "suggest_cases", "write_suggestions"]

SUGGEST_COLUMNS = ("rank", "case", "disagreement", "entropy", "foreground_voxels",
                   "volume_ml")


def score_case(probs: dict[str, np.ndarray], primary: str, voxel_ml: float,
               branches: Iterable[str] = ()) -> dict[str, float]:
    """Trust scores of one case from its outputs' probabilities.

    Args:
        probs: output name -> (C, X, Y, Z) probabilities.
        primary: the run's primary output.
        voxel_ml: volume of one voxel in millilitres.
        branches: the method's branch outputs (see :func:`disagreement_map`).

    Returns:
        ``disagreement``, ``entropy``, ``foreground_voxels``, ``volume_ml``.
    """
    union = np.zeros(probs[primary].shape[1:], dtype=bool)
    for p in probs.values():
        union |= p.argmax(0) > 0
    fg_voxels = int((probs[primary].argmax(0) > 0).sum())
    if not union.any():
        return {"disagreement": 0.0, "entropy": 0.0, "foreground_voxels": 0,
                "volume_ml": 0.0}
    disagreement = float(disagreement_map(probs, primary, branches)[union].mean())
    entropy = float(normalised_entropy(probs[primary])[union].mean())
    return {"disagreement": disagreement, "entropy": entropy,
            "foreground_voxels": fg_voxels, "volume_ml": fg_voxels * voxel_ml}


def suggest_cases(run_dir: Path, checkpoint: str = "last", device: str = "auto",
                  progress: bool = True) -> list[dict]:
    """Score every unlabelled training case of a run, least trustworthy first.

    Args:
        run_dir: a trained run directory (its cache must still exist).
        checkpoint: ``last`` or ``best``.
        device: ``auto``, ``cpu``, ``cuda``...
        progress: show progress.

    Returns:
        Rows with the keys of :data:`SUGGEST_COLUMNS`, ranked (rank 1 = least trusted).

    Raises:
        ConfigError: not a trained run, or the run has no unlabelled training case.
    """
    paths = RunDir(run_dir)
    run = load_trained_run(paths, checkpoint, device)
    cases = load_splits(paths.splits_file)["unlabeled"]
    if not cases:
        raise ConfigError(f"{run_dir} has no unlabelled training case to suggest")
    primary = run.method.primary_output
    branches = [o.name for o in run.method.outputs() if o.kind == "branch"]
    rows = []
    for case in progress_bar(cases, desc="suggest", disable=not progress):
        props = run.cache.properties(case)
        spacing = props.get("spacing_after_resampling") or props.get("original_spacing")
        voxel_ml = float(np.prod(spacing)) / 1000.0 if spacing else math.nan
        probs = predict_probabilities(run, run.cache.load_image(case))
        rows.append({"case": case, **score_case(probs, primary, voxel_ml, branches)})
    rows.sort(key=lambda r: (-r["disagreement"], -r["entropy"], r["case"]))
    return [{"rank": i, **row} for i, row in enumerate(rows, 1)]


def write_suggestions(rows: list[dict], path: Path) -> Path:
    """Write ranked rows as CSV (atomically) and return the path."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUGGEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                         for k, v in row.items()})
    save_text(buf.getvalue(), Path(path))
    return Path(path)
