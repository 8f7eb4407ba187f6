"""Intensity normalisation schemes (one per modality, chosen in ``PrepareConfig``)."""

from __future__ import annotations

import numpy as np

from duetseg.config import NormalizationConfig

__all__ = ["normalize", "SCHEMES"]

SCHEMES = ("minmax", "percentile_minmax", "zscore_nonzero", "ct_window")
_EPS = 1e-8


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] to [0, 1]; a constant range (hi == lo) maps everything to 1."""
    if hi - lo <= _EPS * max(1.0, abs(hi)):
        return np.ones_like(values)
    return (values - lo) / (hi - lo)


def normalize(array: np.ndarray, cfg: NormalizationConfig,
              mask: np.ndarray | None = None) -> np.ndarray:
    """Normalise one modality.

    ``minmax``, ``percentile_minmax`` and ``zscore_nonzero`` compute their statistics over the
    foreground (``mask``, by default the non-zero voxels) and leave the background at 0.
    ``minmax`` maps the foreground's [min, max] to [0, 1] (a constant foreground becomes 1);
    ``percentile_minmax`` first clips to the configured percentiles of the foreground;
    ``zscore_nonzero`` subtracts the foreground mean and divides by its standard deviation (a
    constant foreground becomes 0). ``ct_window`` ignores the mask and maps the whole volume
    from ``level - width/2 .. level + width/2`` to [0, 1], clipped.

    Args:
        array: image of any shape.
        cfg: the scheme and its parameters.
        mask: boolean foreground mask of the same shape, or None for ``array != 0``.

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: unknown scheme, a mask of the wrong shape or a non-positive CT width.
    """
    data = np.asarray(array, dtype=np.float32)
    if cfg.scheme == "ct_window":
        if cfg.window_width <= 0:
            raise ValueError(f"ct_window needs a positive width, got {cfg.window_width}")
        lo = cfg.window_level - cfg.window_width / 2.0
        out = (data - lo) / np.float32(cfg.window_width)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
    if cfg.scheme not in SCHEMES:
        raise ValueError(f"unknown normalisation scheme {cfg.scheme!r}; choose from {SCHEMES}")
    if mask is None:
        mask = data != 0
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != data.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {data.shape}")
    out = np.zeros_like(data)
    values = data[mask].astype(np.float64)
    if values.size == 0:
        return out
    if cfg.scheme == "minmax":
        result = _scale(values, float(values.min()), float(values.max()))
    elif cfg.scheme == "percentile_minmax":
        lo, hi = np.percentile(values, [cfg.lower_percentile, cfg.upper_percentile])
        result = _scale(np.clip(values, lo, hi), float(lo), float(hi))
    else:  # zscore_nonzero
        std = float(values.std())
        result = (values - values.mean()) / std if std > _EPS else np.zeros_like(values)
    out[mask] = result.astype(np.float32)
    return out
