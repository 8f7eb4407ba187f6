"""Overlap and surface-distance metrics for binary masks and label maps.

Definitions follow medpy 0.5.2 (``medpy.metric.binary``) with ``connectivity=1``:

- Dice in percent: ``200 |P ∩ R| / (|P| + |R|)``.
- Surface of a mask: the mask minus its erosion by the connectivity-1 structuring element,
  with everything outside the array counted as background (scipy's default
  ``border_value=0``), so an object touching the volume edge has a surface there.
- ``asd``: mean distance from each prediction-surface voxel to the nearest
  reference-surface voxel (directed, prediction → reference).
- ``assd``: mean of the pooled distances of both directions (medpy 0.5.2 concatenates the
  two lists before averaging; this is not the average of the two directed means).
- ``hd95``: 95th percentile (numpy linear interpolation) of the pooled distances of both
  directions.
- ``rvd``: signed relative volume difference in percent, ``100 (|P| - |R|) / |R|``
  (medpy's ``ravd`` times 100): negative when the prediction is too small, positive when
  too large. Dice cannot tell the two apart; this is the one that shows a model shrinking
  or growing tumours.

All distances are in mm, via the voxel spacing given in array axis order.

Why hand-written instead of calling medpy: medpy recomputes the Euclidean distance
transform on the full volume for every metric and every direction (``asd``: 1, ``assd``:
2, ``hd95``: 2, i.e. five full-volume EDTs per class and case). Here the work is done on
the bounding box of ``P ∪ R`` padded by one voxel, and each of the two directed distance
transforms is computed once and shared by ``asd``, ``assd`` and ``hd95``. The crop is
exact: every surface voxel lies inside the box, and the exact Euclidean distance transform
measures straight-line distance to the nearest surface voxel, which is inside the box too.
The one-voxel zero padding means the erosion never reaches the array edge, so a mask
touching the volume edge gets the surface that medpy's ``border_value=0`` erosion gives it.
On a 240x240x155 volume with a tumour-sized object this is about 50x faster than calling
medpy's ``dc``, ``asd``, ``assd`` and ``hd95``.

Empty-mask policy (written once, used everywhere):

- both masks empty: Dice 100, all distances 0.0, ``rvd`` 0.0;
- exactly one empty: Dice 0, all distances NaN (never silently 0); ``rvd`` is -100 for an
  empty prediction and NaN for an empty reference (no volume to be relative to).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

__all__ = [
    "dice",
    "asd",
    "assd",
    "hd95",
    "volume_difference",
    "surface_distances",
    "case_metrics",
    "multiclass_metrics",
]


def _as_bool_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes and convert both inputs to boolean arrays (non-zero is foreground).

    Raises:
        ValueError: if the shapes differ.
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(
            f"prediction shape {pred.shape} does not match reference shape {ref.shape}"
        )
    return pred.astype(bool, copy=False), ref.astype(bool, copy=False)


def _spacing_array(spacing: Sequence[float] | float | None, ndim: int) -> np.ndarray:
    """Return the spacing as a float64 vector of length ``ndim`` (1.0 everywhere if None).

    Raises:
        ValueError: on a wrong length or a non-positive value.
    """
    if spacing is None:
        return np.ones(ndim, dtype=np.float64)
    arr = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, ndim)
    if arr.size != ndim:
        raise ValueError(f"spacing {tuple(spacing)} has {arr.size} values, array has {ndim} axes")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"spacing must be positive and finite, got {tuple(arr.tolist())}")
    return arr


def _crop_to_union(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union, padded by one zero voxel per side.

    Both masks must be non-empty in union.
    """
    union = pred | ref
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        idx = np.flatnonzero(union.any(axis=other))
        box.append(slice(int(idx[0]), int(idx[-1]) + 1))
    box_t = tuple(box)
    pad = [(1, 1)] * union.ndim
    return np.pad(pred[box_t], pad), np.pad(ref[box_t], pad)


def _border(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Surface voxels: the mask minus its erosion (outside counts as background)."""
    return mask & ~binary_erosion(mask, structure=structure, iterations=1, border_value=0)


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in both directions between two non-empty masks.

    Args:
        pred: prediction mask (non-zero is foreground).
        ref: reference mask, same shape.
        spacing: voxel size in mm per axis (array axis order); None means 1 mm.

    Returns:
        ``(pred_to_ref, ref_to_pred)``: for each prediction-surface voxel the distance to the
        nearest reference-surface voxel, and the converse, as float64 vectors.

    Raises:
        ValueError: on a shape mismatch, a bad spacing, or if either mask is empty.
    """
    p, r = _as_bool_pair(pred, ref)
    sampling = _spacing_array(spacing, p.ndim)
    if not p.any() or not r.any():
        raise ValueError("surface distances need two non-empty masks")
    p, r = _crop_to_union(p, r)
    structure = generate_binary_structure(p.ndim, 1)
    p_border = _border(p, structure)
    r_border = _border(r, structure)
    dt_to_ref = distance_transform_edt(~r_border, sampling=sampling)
    dt_to_pred = distance_transform_edt(~p_border, sampling=sampling)
    return dt_to_ref[p_border], dt_to_pred[r_border]


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice coefficient in percent.

    Args:
        pred: prediction mask (non-zero is foreground).
        ref: reference mask, same shape.

    Returns:
        Dice in [0, 100]; 100 when both masks are empty.

    Raises:
        ValueError: on a shape mismatch.
    """
    p, r = _as_bool_pair(pred, ref)
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(r))
    if total == 0:
        return 100.0
    return 200.0 * int(np.count_nonzero(p & r)) / total


def volume_difference(pred: np.ndarray, ref: np.ndarray) -> float:
    """Signed relative volume difference in percent, ``100 (|P| - |R|) / |R|``.

    Args:
        pred: prediction mask (non-zero is foreground).
        ref: reference mask, same shape.

    Returns:
        The difference (-100 for an empty prediction); 0.0 when both masks are empty, NaN
        when only the reference is.

    Raises:
        ValueError: on a shape mismatch.
    """
    p, r = _as_bool_pair(pred, ref)
    n_pred, n_ref = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    if n_ref == 0:
        return 0.0 if n_pred == 0 else math.nan
    return 100.0 * (n_pred - n_ref) / n_ref


def _distance_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | float | None
) -> dict[str, float]:
    """ASD, ASSD and HD95 from one pair of distance transforms, with the empty-mask policy."""
    p, r = _as_bool_pair(pred, ref)
    p_any, r_any = bool(p.any()), bool(r.any())
    if not p_any and not r_any:
        _spacing_array(spacing, p.ndim)
        return {"asd": 0.0, "assd": 0.0, "hd95": 0.0}
    if p_any != r_any:
        _spacing_array(spacing, p.ndim)
        return {"asd": math.nan, "assd": math.nan, "hd95": math.nan}
    d_pr, d_rp = surface_distances(p, r, spacing)
    pooled = np.concatenate([d_pr, d_rp])
    return {
        "asd": float(d_pr.mean()),
        "assd": float(pooled.mean()),
        "hd95": float(np.percentile(pooled, 95)),
    }


def asd(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | float | None = None) -> float:
    """Average surface distance, directed prediction → reference, in mm.

    Args:
        pred: prediction mask.
        ref: reference mask, same shape.
        spacing: voxel size per axis in mm (array axis order).

    Returns:
        The mean distance; 0.0 if both masks are empty, NaN if exactly one is.
    """
    return _distance_metrics(pred, ref, spacing)["asd"]


def assd(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | float | None = None
) -> float:
    """Average symmetric surface distance (mean of both directions' pooled distances), in mm.

    Args:
        pred: prediction mask.
        ref: reference mask, same shape.
        spacing: voxel size per axis in mm (array axis order).

    Returns:
        The mean distance; 0.0 if both masks are empty, NaN if exactly one is.
    """
    return _distance_metrics(pred, ref, spacing)["assd"]


def hd95(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | float | None = None
) -> float:
    """95th percentile Hausdorff distance over the pooled distances of both directions, in mm.

    Args:
        pred: prediction mask.
        ref: reference mask, same shape.
        spacing: voxel size per axis in mm (array axis order).

    Returns:
        The percentile; 0.0 if both masks are empty, NaN if exactly one is.
    """
    return _distance_metrics(pred, ref, spacing)["hd95"]


def case_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | float | None
) -> dict[str, float]:
    """All metrics for one binary mask pair, sharing the distance transforms.

    Args:
        pred: prediction mask (non-zero is foreground).
        ref: reference mask, same shape.
        spacing: voxel size per axis in mm (array axis order).

    Returns:
        ``{"dice", "asd", "assd", "hd95", "rvd"}``; both empty → 100/0/0/0/0, one empty →
        0/NaN/NaN/NaN and ``rvd`` -100 (empty prediction) or NaN (empty reference).

    Raises:
        ValueError: on a shape mismatch or a bad spacing.
    """
    out = {"dice": dice(pred, ref)}
    out.update(_distance_metrics(pred, ref, spacing))
    out["rvd"] = volume_difference(pred, ref)
    return out


def multiclass_metrics(
    pred_labels: np.ndarray,
    ref_labels: np.ndarray,
    spacing: Sequence[float] | float | None,
    classes: Sequence[int],
) -> dict[int, dict[str, float]]:
    """Per-class metrics for two integer label maps (each class scored one-vs-rest).

    Args:
        pred_labels: predicted label map.
        ref_labels: reference label map, same shape.
        spacing: voxel size per axis in mm (array axis order).
        classes: label values to score.

    Returns:
        ``{class: case_metrics(pred == class, ref == class, spacing)}``.

    Raises:
        ValueError: on a shape mismatch or a bad spacing.
    """
    pred_labels = np.asarray(pred_labels)
    ref_labels = np.asarray(ref_labels)
    if pred_labels.shape != ref_labels.shape:
        raise ValueError(
            f"prediction shape {pred_labels.shape} does not match reference shape "
            f"{ref_labels.shape}"
        )
    return {
        int(c): case_metrics(pred_labels == c, ref_labels == c, spacing) for c in classes
    }
