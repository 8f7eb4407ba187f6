"""Preprocess one case: load, check grids, resample, crop, normalise, map labels.

The properties dict of a case (JSON-serialisable, saved as ``<case>.json`` in the cache):

* ``case``, ``modalities``, ``source_files`` (modality -> path), ``label_file`` (or None),
  ``labelled``;
* ``reference_modality``: the modality whose grid the cache uses (the first one, or with
  registration the registration reference); ``registration``: modality -> transform and
  quality (see :mod:`duetseg.data.registration`), or None without registration;
* original file geometry (of the reference modality; predictions are written like it):
  ``original_shape``, ``original_affine``, ``original_axcodes``, ``original_ornt``
  (``nibabel.orientations.io_orientation`` of the original affine), ``original_zooms``,
  ``qform_code``, ``sform_code``;
* canonical (RAS) geometry: ``canonical_shape``, ``canonical_affine``, ``original_spacing``
  (x, y, z mm);
* resampling: ``resampled``, ``target_spacing``, ``shape_after_resampling``,
  ``spacing_after_resampling`` (the exact spacing of the cache grid, which can differ
  slightly from the target because shapes are rounded);
* crop: ``crop_bbox`` (``[[lo, hi), ...]`` in the resampled grid), ``shape_after_crop``;
* ``cache_affine``: voxel -> world (mm) affine of the cached arrays;
* ``normalization``: modality -> scheme; ``label_voxels_outside_crop`` for labelled cases;
* ``missing_modalities`` (only after :func:`fill_missing_modalities`): the configured
  modalities the case lacked, zero-filled.

A case lacking some modalities (prediction by a run trained with modality dropout) is
preprocessed from the ones it has: ``modalities`` lists those, the geometry is that of the
first present one (with registration: of the reference when present, else of the first
present one), and :func:`fill_missing_modalities` then adds the absent channels as zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from duetseg.config import PrepareConfig
from duetseg.data import geometry as geo
from duetseg.data import registration as reg
from duetseg.data.discovery import CaseSpec
from duetseg.data.normalize import normalize
from duetseg.errors import ConfigError, InputError

__all__ = ["BRATS_REGIONS", "PreprocessedCase", "fill_missing_modalities", "map_labels",
           "preprocess_case"]

# BraTS regions by name (necrosis 1, oedema 2, enhancing tumour 4, or 3 from BraTS 2023 on)
BRATS_REGIONS: dict[str, dict[int, int]] = {
    "tumour_core": {1: 1, 2: 0, 3: 1, 4: 1},
    "enhancing_tumour": {1: 0, 2: 0, 3: 1, 4: 1},
}


@dataclass
class PreprocessedCase:
    """A case in cache geometry.

    Attributes:
        image: (C, X, Y, Z) float32, modalities in the configured order.
        label: (X, Y, Z) uint8 classes, or None when unlabelled.
        properties: JSON-serialisable geometry and provenance (see module docstring).
    """

    image: np.ndarray
    label: np.ndarray | None
    properties: dict


def map_labels(label: np.ndarray, mapping, num_classes: int, case: str,
               file: Path | str | None) -> np.ndarray:
    """Map stored label values to classes ``0 .. num_classes-1``.

    Args:
        label: stored label values (integers, possibly stored as floats).
        mapping: ``"whole_tumour"`` (any value > 0 becomes 1), a BraTS region of
            :data:`BRATS_REGIONS`, ``"identity"`` (values must already be classes) or a dict
            original value -> class (0 -> 0 unless the dict maps 0).
        num_classes: number of classes.
        case: case name (errors).
        file: label file (errors).

    Returns:
        uint8 array of the same shape.

    Raises:
        InputError: non-integer values, or values the mapping does not know.
        ConfigError: a dict mapping to a class outside ``0 .. num_classes-1``.
    """
    label = np.asarray(label)
    if np.issubdtype(label.dtype, np.floating):
        if not np.array_equal(label, np.round(label)):
            raise InputError("label has non-integer values", case=case, file=file)
        label = label.astype(np.int64)
    values = np.unique(label)
    if mapping == "whole_tumour":
        return (label > 0).astype(np.uint8)
    if isinstance(mapping, str) and mapping in BRATS_REGIONS:
        mapping = BRATS_REGIONS[mapping]
    if mapping == "identity":
        bad = [int(v) for v in values if v < 0 or v >= num_classes]
        if bad:
            raise InputError(f"unknown label values {bad} (found {values.tolist()}; identity "
                             f"mapping expects 0..{num_classes - 1})", case=case, file=file)
        return label.astype(np.uint8)
    if not isinstance(mapping, dict):
        raise ConfigError(f"label_mapping must be 'whole_tumour', 'identity', one of "
                          f"{sorted(BRATS_REGIONS)} or a dict, "
                          f"got {mapping!r}")
    # Background stays background unless the mapping says otherwise.
    table = {0: 0} | {int(k): int(v) for k, v in mapping.items()}
    wrong = {k: v for k, v in table.items() if not 0 <= v < num_classes}
    if wrong:
        raise ConfigError(f"label_mapping targets outside 0..{num_classes - 1}: {wrong}")
    bad = [int(v) for v in values if int(v) not in table]
    if bad:
        raise InputError(f"unknown label values {bad} (found {values.tolist()}; mapping "
                         f"knows {sorted(table)})", case=case, file=file)
    out = np.zeros(label.shape, dtype=np.uint8)
    for value in values:
        out[label == value] = table[int(value)]
    return out


def preprocess_case(spec: CaseSpec, cfg: PrepareConfig) -> PreprocessedCase:
    """Run the preparation pipeline on one case.

    With ``cfg.registration.enabled`` every other modality is rigidly registered to the
    reference modality and resampled onto its grid, which then defines the cache and the
    geometry predictions are written in; the label must be on that grid. Without it, all
    volumes must share one grid.

    Args:
        spec: the case's files (all of ``cfg.modalities``, or a subset for prediction).
        cfg: preparation settings.

    Returns:
        The case in cache geometry with its properties.

    Raises:
        InputError: unreadable or invalid volumes, modalities or label on different grids,
            a failed or implausible registration, unknown label values.
    """
    names = list(spec.images)
    originals = {m: geo.load_original(spec.images[m], spec.case) for m in names}
    canon = {m: nib.as_closest_canonical(img) for m, img in originals.items()}
    for m in names:
        canon[m].set_filename(str(spec.images[m]))
    registration = None
    if cfg.registration.enabled:
        ref_name = reg.reference_modality(cfg)
        if ref_name not in spec.images:  # a case predicted without it: the first present
            ref_name = names[0]
        canon, registration = reg.register_modalities(canon, spec.images, ref_name,
                                                      cfg.registration, spec.case)
    else:
        ref_name = names[0]
        geo.check_same_grid(canon, spec.case)
    ref = canon[ref_name]
    props: dict = {
        "case": spec.case,
        "modalities": names,
        "source_files": {m: str(spec.images[m]) for m in names},
        "label_file": None if spec.label is None else str(spec.label),
        "labelled": spec.label is not None,
        "reference_modality": ref_name,
        "registration": registration,
        **geo.orientation_properties(originals[ref_name]),
        "canonical_shape": [int(s) for s in ref.shape],
        "canonical_affine": np.asarray(ref.affine, dtype=float).tolist(),
    }
    label = None
    if spec.label is not None:
        lab_img = geo.load_volume(spec.label, spec.case, is_label=True)
        if registration is None:
            geo.check_same_grid({ref_name: ref, "label": lab_img}, spec.case)
        else:
            reg.check_label_grid(ref_name, ref, lab_img, spec.case, spec.images, spec.label)
        label = map_labels(np.asanyarray(lab_img.dataobj), cfg.label_mapping, cfg.num_classes,
                           spec.case, spec.label)

    spacing = geo.spacing_of(ref.affine)
    shape = tuple(ref.shape)
    new_shape = shape
    if cfg.target_spacing is not None:
        new_shape = geo.resampled_shape(shape, spacing, cfg.target_spacing)
    image = np.stack([np.asarray(canon[m].dataobj, dtype=np.float32) for m in names])
    del originals, canon
    resampled = new_shape != shape
    if resampled:
        image = geo.resample(image, new_shape, order=1)
        if label is not None:
            label = geo.resample(label, new_shape, order=0)
    props.update({
        "original_spacing": list(spacing),
        "resampled": bool(resampled),
        "target_spacing": None if cfg.target_spacing is None else list(cfg.target_spacing),
        "shape_after_resampling": [int(s) for s in new_shape],
        "spacing_after_resampling": [
            s * n / m for s, n, m in zip(spacing, shape, new_shape, strict=True)],
    })
    bbox = geo.nonzero_bbox(list(image), cfg.crop_margin)
    image = np.ascontiguousarray(geo.crop(image, bbox))
    cache_affine = geo.resampled_affine(ref.affine, shape, new_shape)
    cache_affine[:3, 3] += cache_affine[:3, :3] @ np.array([lo for lo, _ in bbox], dtype=float)
    props.update({
        "crop_bbox": bbox,
        "shape_after_crop": [int(s) for s in image.shape[1:]],
        "cache_affine": cache_affine.tolist(),
        "normalization": {m: cfg.normalization_for(m).scheme for m in names},
    })
    if label is not None:
        total = int(np.count_nonzero(label))
        label = np.ascontiguousarray(geo.crop(label, bbox))
        props["label_voxels_outside_crop"] = total - int(np.count_nonzero(label))
    for c, m in enumerate(names):
        image[c] = normalize(image[c], cfg.normalization_for(m))
    return PreprocessedCase(image=image.astype(np.float32, copy=False), label=label,
                            properties=props)


def fill_missing_modalities(case: PreprocessedCase, modalities: list[str]) -> PreprocessedCase:
    """The case with one channel per modality of ``modalities``, absent ones zero-filled.

    Args:
        case: a preprocessed case whose ``properties["modalities"]`` are a subset of
            ``modalities`` (in their order).
        modalities: the run's modalities, in input-channel order.

    Returns:
        ``case`` itself when nothing is missing, else a copy with a (K, X, Y, Z) image (zeros
        in the absent channels, i.e. after normalisation) and ``missing_modalities`` in its
        properties.
    """
    names = list(case.properties["modalities"])
    if names == list(modalities):
        return case
    image = np.zeros((len(modalities), *case.image.shape[1:]), dtype=np.float32)
    for c, name in enumerate(names):
        image[list(modalities).index(name)] = case.image[c]
    props = {**case.properties,
             "missing_modalities": [m for m in modalities if m not in names]}
    return PreprocessedCase(image=image, label=case.label, properties=props)
