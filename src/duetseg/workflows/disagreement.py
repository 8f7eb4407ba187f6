"""How much a case's outputs disagree, voxel by voxel: the maps ``duetseg predict`` writes
and ``duetseg suggest`` ranks cases by."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["disagreement_map", "normalised_entropy"]


def normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """Voxel-wise entropy of (C, X, Y, Z) probabilities divided by log C, in [0, 1]."""
    p = np.clip(probs, 1e-12, 1.0)
    ent = -(probs * np.log(p)).sum(0) / math.log(probs.shape[0])
    return np.clip(ent, 0.0, 1.0).astype(np.float32)


def disagreement_map(probs: dict[str, np.ndarray], primary: str,
                     branches: Iterable[str] = ()) -> np.ndarray:
    """Voxel-wise disagreement in [0, 1] of one case's outputs.

    With two or more branch outputs in ``probs``: the largest absolute difference between
    two branches' foreground probabilities (1 - p(background)), i.e. max over pairs of
    |p_i - p_j| = max_i p_i - min_i p_i. Otherwise (a single network, or one branch left
    by a missing modality) there is nothing to compare: the normalised entropy of the
    primary output.

    Args:
        probs: output name -> (C, X, Y, Z) probabilities.
        primary: name of the primary output.
        branches: the method's branch outputs (``kind == "branch"`` in its ``outputs()``);
            those absent from ``probs`` are ignored.

    Returns:
        (X, Y, Z) float32 map.
    """
    present = [probs[k] for k in sorted(set(branches)) if k in probs]
    if len(present) < 2:
        return normalised_entropy(probs[primary])
    fg = np.stack([1.0 - b[0] for b in present])
    return np.clip(fg.max(0) - fg.min(0), 0.0, 1.0).astype(np.float32)
