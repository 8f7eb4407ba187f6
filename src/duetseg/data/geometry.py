"""Loading, grid checks, resampling, cropping and the exact inverse of all of it.

Conventions: volumes are reoriented to the closest canonical (RAS) orientation and indexed
(x, y, z). Resampling uses ``scipy.ndimage.affine_transform`` with a diagonal matrix that
aligns voxel *centres* on a common field of view (the ``grid_mode=True`` convention of
``scipy.ndimage.zoom``): output voxel ``j`` of ``m`` samples input coordinate
``(j + 0.5) * n / m - 0.5`` of ``n`` voxels, with ``mode="nearest"`` at the borders. So a
label made of 2x2x2 blocks goes 1 mm -> 2 mm -> 1 mm unchanged. Labels use order 0 (nearest),
images and probabilities order 1 (linear).

The properties dict written next to each cached case (see :mod:`duetseg.data.preprocess`)
holds the keys read here: ``original_shape``, ``original_affine``, ``original_ornt``,
``canonical_shape``, ``shape_after_resampling``, ``crop_bbox``, ``qform_code``,
``sform_code``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt_mod
from scipy import ndimage

from duetseg.atomic import atomic_path
from duetseg.errors import InputError

__all__ = [
    "load_original",
    "load_volume",
    "spacing_of",
    "check_same_grid",
    "orientation_properties",
    "resampled_shape",
    "resample",
    "resampled_affine",
    "nonzero_bbox",
    "crop",
    "restore_to_original",
    "write_like_original",
]

_RAS = ornt_mod.axcodes2ornt(("R", "A", "S"))


def load_original(path: Path, case: str, is_label: bool = False) -> nib.Nifti1Image:
    """Load and check a volume, keeping the file's own orientation.

    Args:
        path: NIfTI file.
        case: case name (for error messages).
        is_label: labels may be all zero; images may not.

    Returns:
        An in-memory 3D image (float32 data for images, the stored dtype for labels).

    Raises:
        InputError: unreadable or truncated file, not 3D, NaN/inf voxels, all-zero image.
    """
    path = Path(path)
    try:
        img = nib.load(str(path))
        data = img.get_fdata(dtype=np.float32) if not is_label else np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for broken files
        raise InputError(f"cannot read image ({type(exc).__name__}: {exc})", case=case,
                         file=path) from exc
    if data.ndim > 3 and all(s == 1 for s in data.shape[3:]):
        data = data.reshape(data.shape[:3])
    if data.ndim != 3:
        raise InputError(f"expected a 3D volume, got shape {tuple(data.shape)}", case=case,
                         file=path)
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise InputError(f"{bad} NaN/inf voxels", case=case, file=path)
    if not is_label and not np.any(data):
        raise InputError("image is all zero", case=case, file=path)
    out = nib.Nifti1Image(np.asarray(data), img.affine)
    hdr = img.header
    is_nifti = isinstance(hdr, nib.Nifti1Header)
    codes = (hdr["qform_code"], hdr["sform_code"]) if is_nifti else (1, 1)
    out.extra["codes"] = (int(codes[0]), int(codes[1]))
    out.set_filename(str(path))
    return out


def load_volume(path: Path, case: str, is_label: bool = False) -> nib.Nifti1Image:
    """Load, check (see :func:`load_original`) and reorient to closest canonical (RAS)."""
    original = load_original(path, case, is_label)
    canon = nib.as_closest_canonical(original)
    canon.set_filename(str(path))
    return canon


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing (mm) along the three array axes of ``affine``."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))


def check_same_grid(images: dict[str, nib.Nifti1Image], case: str, atol: float = 1e-3) -> None:
    """Check that all images share one voxel grid (shape and affine).

    Args:
        images: name -> image (same orientation convention for all).
        case: case name.
        atol: absolute tolerance on affine entries.

    Raises:
        InputError: listing each file with its shape and affine when they differ.
    """
    items = list(images.items())
    ref = items[0][1]
    same = all(img.shape == ref.shape and np.allclose(img.affine, ref.affine, atol=atol)
               for _, img in items[1:])
    if same:
        return
    lines = [f"  {name} ({img.get_filename()}): shape {tuple(img.shape)}, affine "
             f"{np.round(img.affine, 4).tolist()}" for name, img in items]
    raise InputError("volumes are not on the same voxel grid (no registration configured):\n"
                     + "\n".join(lines), case=case, file=ref.get_filename())


def orientation_properties(original: nib.Nifti1Image) -> dict[str, Any]:
    """Geometry of the file as stored, needed to undo the canonical reorientation."""
    qcode, scode = original.extra.get("codes", (1, 1))
    return {
        "original_shape": [int(s) for s in original.shape[:3]],
        "original_affine": np.asarray(original.affine, dtype=float).tolist(),
        "original_axcodes": list(nib.aff2axcodes(original.affine)),
        "original_ornt": ornt_mod.io_orientation(original.affine).astype(int).tolist(),
        "original_zooms": [float(z) for z in original.header.get_zooms()[:3]],
        "qform_code": int(qcode),
        "sform_code": int(scode),
    }


def resampled_shape(shape: tuple[int, ...], spacing: tuple[float, ...],
                    target: tuple[float, ...]) -> tuple[int, int, int]:
    """Shape covering the same field of view at ``target`` spacing (at least 1 voxel)."""
    triples = zip(shape, spacing, target, strict=True)
    return tuple(max(1, int(round(n * s / t))) for n, s, t in triples)


def _axis_map(n_in: int, n_out: int) -> tuple[float, float]:
    zoom = n_in / n_out
    return zoom, 0.5 * zoom - 0.5


def resampled_affine(affine: np.ndarray, in_shape, out_shape) -> np.ndarray:
    """Affine of the grid produced by :func:`resample` from a grid with ``affine``."""
    scale = np.eye(4)
    for ax in range(3):
        scale[ax, ax], scale[ax, 3] = _axis_map(in_shape[ax], out_shape[ax])
    return np.asarray(affine) @ scale


def resample(array: np.ndarray, out_shape, order: int) -> np.ndarray:
    """Resample a (X, Y, Z) or (C, X, Y, Z) array to spatial ``out_shape`` (centre-aligned).

    Args:
        array: the volume; a leading channel axis is resampled channel by channel.
        out_shape: target (X, Y, Z).
        order: 0 (nearest, labels) or 1 (linear, images and probabilities).

    Returns:
        The resampled array, same dtype.
    """
    out_shape = tuple(int(s) for s in out_shape)
    if array.ndim == 4:
        return np.stack([resample(a, out_shape, order) for a in array])
    if tuple(array.shape) == out_shape:
        return array.copy()
    maps = [_axis_map(n, m) for n, m in zip(array.shape, out_shape, strict=True)]
    return ndimage.affine_transform(array, [z for z, _ in maps], offset=[o for _, o in maps],
                                    output_shape=out_shape, order=order, mode="nearest",
                                    prefilter=False)


def nonzero_bbox(arrays: list[np.ndarray], margin: int = 0) -> list[list[int]]:
    """Bounding box ``[[lo, hi), ...]`` of voxels non-zero in any array, plus ``margin``.

    An all-zero input gives the full volume.
    """
    shape = arrays[0].shape[-3:]
    mask = np.zeros(shape, dtype=bool)
    for arr in arrays:
        mask |= arr != 0
    if not mask.any():
        return [[0, int(n)] for n in shape]
    bbox = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        bbox.append([max(0, int(idx[0]) - margin), min(int(shape[ax]), int(idx[-1]) + 1 + margin)])
    return bbox


def crop(array: np.ndarray, bbox: list[list[int]]) -> np.ndarray:
    """Crop the last three axes of ``array`` to ``bbox``."""
    sl = tuple(slice(lo, hi) for lo, hi in bbox)
    return array[(..., *sl)]


def restore_to_original(array: np.ndarray, properties: dict, is_label: bool) -> np.ndarray:
    """Put an array in cache geometry back into the original file's geometry.

    Un-crops (background: 0 for labels; probabilities get 1 in class 0 and 0 elsewhere),
    un-resamples (nearest for labels, linear for probabilities) and undoes the canonical
    reorientation.

    Args:
        array: (X, Y, Z) label or (C, X, Y, Z) probabilities in cache geometry.
        properties: the case's properties dict.
        is_label: True for a label map.

    Returns:
        (X0, Y0, Z0) or (C, X0, Y0, Z0) array in the original file's orientation and shape.

    Raises:
        ValueError: the array's shape does not match the cached geometry.
    """
    bbox = properties["crop_bbox"]
    expect = tuple(hi - lo for lo, hi in bbox)
    if tuple(array.shape[-3:]) != expect or array.ndim != (3 if is_label else 4):
        raise ValueError(f"array shape {array.shape} does not match the cached geometry "
                         f"{expect} ({'label' if is_label else 'probabilities (C, X, Y, Z)'})")
    res_shape = tuple(properties["shape_after_resampling"])
    full = np.zeros(array.shape[:-3] + res_shape, dtype=array.dtype)
    if not is_label:
        full[0] = 1
    full[(..., *(slice(lo, hi) for lo, hi in bbox))] = array
    full = resample(full, properties["canonical_shape"], order=0 if is_label else 1)
    back = ornt_mod.ornt_transform(_RAS, np.asarray(properties["original_ornt"], dtype=float))
    if is_label:
        out = ornt_mod.apply_orientation(full, back)
    else:
        out = np.moveaxis(ornt_mod.apply_orientation(np.moveaxis(full, 0, -1), back), -1, 0)
    if tuple(out.shape[-3:]) != tuple(properties["original_shape"]):
        raise ValueError(f"restored shape {out.shape} != original {properties['original_shape']}")
    return np.ascontiguousarray(out)


def write_like_original(array: np.ndarray, properties: dict, path: Path,
                        dtype=np.uint8) -> None:
    """Write an array in original geometry as NIfTI with the original affine, atomically.

    Args:
        array: (X0, Y0, Z0), or (C, X0, Y0, Z0) written as a 4D NIfTI with channels last.
        properties: the case's properties dict.
        path: target ``.nii.gz`` file.
        dtype: stored data type.

    Raises:
        ValueError: the array's spatial shape differs from the original.
    """
    if tuple(array.shape[-3:]) != tuple(properties["original_shape"]):
        raise ValueError(f"shape {array.shape} != original {properties['original_shape']}")
    data = np.moveaxis(array, 0, -1) if array.ndim == 4 else array
    affine = np.asarray(properties["original_affine"], dtype=float)
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
    img.set_qform(affine, code=int(properties.get("qform_code") or 1))
    img.set_sform(affine, code=int(properties.get("sform_code") or 1))
    img.header.set_xyzt_units("mm")
    with atomic_path(path, suffix=".nii.gz") as tmp:
        nib.save(img, str(tmp))
