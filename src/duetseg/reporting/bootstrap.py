"""Bootstrap confidence intervals of a mean, over values or over groups of values."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["N_RESAMPLES", "BOOTSTRAP_SEED", "bootstrap_mean_ci", "per_case_means"]

N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def bootstrap_mean_ci(values: np.ndarray, n_resamples: int = N_RESAMPLES,
                      confidence: float = 0.95, seed: int = BOOTSTRAP_SEED,
                      groups: np.ndarray | list | None = None) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (reproducible: fixed seed).

    Args:
        values: the sample (e.g. paired differences).
        n_resamples: bootstrap resamples (with replacement, same size as ``values``).
        confidence: coverage of the interval.
        seed: seed of ``numpy.random.default_rng``.
        groups: a label per value (e.g. the test case); when given, whole groups are
            resampled (cluster bootstrap: as many groups as there are, each with all its
            values) and each resample's mean is over the values it holds.

    Returns:
        (low, high); NaN for an empty sample, the value itself when all values are equal.

    Raises:
        ValueError: ``groups`` does not have one label per value.
    """
    values = np.asarray(values, dtype=float)
    n = values.size
    if n == 0:
        return math.nan, math.nan
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    if groups is None:
        sums, counts = values, np.ones(n)
    else:
        labels = np.asarray(groups)
        if labels.shape != values.shape:
            raise ValueError(f"groups has shape {labels.shape}, values {values.shape}")
        _, index = np.unique(labels, return_inverse=True)
        sums = np.bincount(index, weights=values)
        counts = np.bincount(index).astype(float)
    k = sums.size
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    step = max(1, 2_000_000 // k)  # bound the index array to ~16 MB
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        idx = rng.integers(0, k, size=(stop - start, k))
        means[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def per_case_means(cases: list[str], *samples: np.ndarray) -> list[np.ndarray]:
    """Each sample averaged over the pairs of each case (cases in sorted order)."""
    _, index = np.unique(np.asarray(cases), return_inverse=True)
    counts = np.bincount(index)
    return [np.bincount(index, weights=x) / counts for x in samples]
