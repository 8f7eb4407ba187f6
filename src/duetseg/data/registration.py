"""Rigid registration of modalities on different grids (CT + MR) with SimpleITK.

Each moving modality is registered to the reference modality (Euler3DTransform, Mattes
mutual information, regular-step gradient descent, multi-resolution) and resampled onto the
reference grid (linear, outside the moving image's field of view filled with its minimum, so
CT air stays air). Registration runs in world coordinates, so the two files may differ in
spacing, shape and orientation.

Coordinates: nibabel affines map voxels to RAS+ millimetres, ITK images to LPS; the two
differ by flipping the first two world axes. :func:`to_sitk` turns an ``(X, Y, Z)`` array and
its affine into an ITK image with the same voxel -> world mapping.

The result of each moving modality is stored in ``properties["registration"][modality]``:
``reference``, ``moving_file``, ``skipped`` (True when it already was on the reference grid
and ``skip_same_grid`` is set), and for registered ones ``transform`` (``Euler3DTransform``),
``parameters`` (3 angles in radians, 3 translations in mm), ``fixed_parameters`` (centre of
rotation), ``space`` (``LPS``; the transform maps a reference-image point to the matching
moving-image point), ``metric`` / ``initial_metric`` (Mattes MI on all voxels at the final /
initial transform, lower is better), ``iterations``, ``stop_condition``, ``rotation_deg``
and ``translation_mm`` (what the optimiser added to the initialisation, the quantities
bounded by the plausibility limits) and ``initial_offset_mm``. Rebuild the transform with
:func:`transform_from_entry`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

try:
    import SimpleITK as sitk
except ImportError:  # a declared dependency, but only `prepare --register` needs it
    sitk = None

from duetseg.config import PrepareConfig, RegistrationConfig
from duetseg.errors import ConfigError, InputError

__all__ = [
    "reference_modality",
    "to_sitk",
    "from_sitk",
    "register_rigid",
    "register_modalities",
    "check_label_grid",
    "transform_from_entry",
]

log = logging.getLogger("duetseg")

_LPS = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS (its own inverse)


def reference_modality(cfg: PrepareConfig) -> str:
    """The configured reference, else the first non-``ct_window`` modality, else the first."""
    if cfg.registration.reference is not None:
        return cfg.registration.reference
    for name in cfg.modalities:
        if cfg.normalization_for(name).scheme != "ct_window":
            return name
    return cfg.modalities[0]


def to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """An ITK image with ``array`` (indexed x, y, z) and the voxel -> world map of ``affine``.

    Args:
        array: (X, Y, Z) volume.
        affine: 4x4 nibabel (RAS+) affine.

    Returns:
        A float32 ``sitk.Image`` whose physical (LPS) points are the affine's RAS points with
        the first two coordinates negated.
    """
    affine = np.asarray(affine, dtype=float)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    # GetImageFromArray reads numpy axes as (z, y, x)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0)),
                                                        dtype=np.float32))
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection((_LPS @ (affine[:3, :3] / spacing)).ravel().tolist())
    image.SetOrigin((_LPS @ affine[:3, 3]).tolist())
    return image


def from_sitk(image: sitk.Image) -> np.ndarray:
    """The voxels of an ITK image as an (X, Y, Z) array."""
    return np.ascontiguousarray(np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0)))


def _centre(image: sitk.Image) -> np.ndarray:
    return np.array(image.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2.0 for n in image.GetSize()]))


def _initial_transform(fixed: sitk.Image, moving: sitk.Image,
                       cfg: RegistrationConfig) -> sitk.Euler3DTransform:
    if cfg.initialization == "header":
        transform = sitk.Euler3DTransform()
        transform.SetCenter(_centre(fixed).tolist())
        return transform
    if cfg.initialization == "moments":
        # centres of mass need non-negative "mass": shift CT's -1000 HU air to 0
        fixed = fixed - float(sitk.GetArrayViewFromImage(fixed).min())
        moving = moving - float(sitk.GetArrayViewFromImage(moving).min())
        mode = sitk.CenteredTransformInitializerFilter.MOMENTS
    else:
        mode = sitk.CenteredTransformInitializerFilter.GEOMETRY
    return sitk.Euler3DTransform(
        sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(), mode))


def _method(cfg: RegistrationConfig) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=cfg.histogram_bins)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetNumberOfThreads(cfg.num_threads)
    return method


def _metric(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
            cfg: RegistrationConfig) -> float:
    """Mattes MI on all voxels (no sampling, full resolution) at ``transform``."""
    method = _method(cfg)
    method.SetInitialTransform(transform, inPlace=False)
    return float(method.MetricEvaluate(fixed, moving))


def _rotation_deg(transform: sitk.Euler3DTransform) -> float:
    matrix = np.array(transform.GetMatrix()).reshape(3, 3)
    cos = np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)))


def register_rigid(fixed: sitk.Image, moving: sitk.Image,
                   cfg: RegistrationConfig) -> tuple[sitk.Euler3DTransform, dict[str, Any]]:
    """Register ``moving`` to ``fixed`` rigidly (no plausibility checks).

    Args:
        fixed: reference image.
        moving: image to align.
        cfg: optimiser, metric and multi-resolution settings.

    Returns:
        The transform (fixed physical point -> moving physical point) and its summary
        (the keys listed in the module docstring, without ``reference`` and ``moving_file``).

    Raises:
        RuntimeError: SimpleITK failed.
    """
    initial = _initial_transform(fixed, moving, cfg)
    method = _method(cfg)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(cfg.sampling_percentage, cfg.seed)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=cfg.learning_rate, minStep=1e-3, numberOfIterations=cfg.iterations,
        relaxationFactor=0.8, gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(cfg.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(cfg.smoothing_sigmas))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(sitk.Euler3DTransform(initial), inPlace=False)
    iterations = [0]
    method.AddCommand(sitk.sitkIterationEvent,
                      lambda: iterations.__setitem__(0, iterations[0] + 1))
    result = method.Execute(fixed, moving)
    if isinstance(result, sitk.CompositeTransform):
        result = result.GetBackTransform()
    final = sitk.Euler3DTransform(result)
    centre = _centre(fixed)
    start = np.array(initial.TransformPoint(centre.tolist()))
    end = np.array(final.TransformPoint(centre.tolist()))
    return final, {
        "transform": "Euler3DTransform",
        "space": "LPS",
        "parameters": [float(p) for p in final.GetParameters()],
        "fixed_parameters": [float(p) for p in final.GetFixedParameters()],
        "metric": _metric(fixed, moving, final, cfg),
        "initial_metric": _metric(fixed, moving, initial, cfg),
        "iterations": int(iterations[0]),
        "stop_condition": method.GetOptimizerStopConditionDescription(),
        "rotation_deg": _rotation_deg(final),
        "translation_mm": float(np.linalg.norm(end - start)),
        "initial_offset_mm": float(np.linalg.norm(start - centre)),
    }


def _implausible(info: dict[str, Any], cfg: RegistrationConfig) -> str | None:
    if not np.isfinite(info["metric"]):
        return f"the final metric is {info['metric']}"
    if info["metric"] >= info["initial_metric"]:
        return (f"the metric did not improve ({info['initial_metric']:.4f} -> "
                f"{info['metric']:.4f}; Mattes MI, lower is better)")
    if cfg.max_metric is not None and info["metric"] > cfg.max_metric:
        return f"the final metric {info['metric']:.4f} is above max_metric {cfg.max_metric}"
    if info["rotation_deg"] > cfg.max_rotation_deg:
        return (f"rotation {info['rotation_deg']:.1f} deg exceeds max_rotation_deg "
                f"{cfg.max_rotation_deg}")
    if info["translation_mm"] > cfg.max_translation_mm:
        return (f"translation {info['translation_mm']:.1f} mm (beyond the "
                f"{cfg.initialization} initialisation) exceeds max_translation_mm "
                f"{cfg.max_translation_mm}")
    return None


def _same_grid(a: nib.Nifti1Image, b: nib.Nifti1Image, atol: float = 1e-3) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=atol)


def register_modalities(images: dict[str, nib.Nifti1Image], files: dict[str, Path | str],
                        reference: str, cfg: RegistrationConfig,
                        case: str) -> tuple[dict[str, nib.Nifti1Image], dict[str, Any]]:
    """Register every other modality to ``reference`` and resample it onto its grid.

    Args:
        images: modality -> image (canonical orientation, float data).
        files: modality -> source file (messages and properties).
        reference: the reference modality.
        cfg: registration settings.
        case: case name.

    Returns:
        modality -> image on the reference grid (the reference unchanged), and the
        ``properties["registration"]`` dict (one entry per moving modality).

    Raises:
        InputError: SimpleITK failed, or the result is implausible (see the config limits);
            names the case and the moving file.
    """
    if sitk is None:
        raise ConfigError("registration needs SimpleITK: pip install SimpleITK")
    ref_img = images[reference]
    try:
        fixed = to_sitk(np.asarray(ref_img.dataobj), ref_img.affine)
    except RuntimeError as exc:
        raise InputError(f"SimpleITK cannot use the reference image: {exc}", case=case,
                         file=files[reference]) from exc
    out: dict[str, nib.Nifti1Image] = {}
    record: dict[str, Any] = {}
    for name, img in images.items():
        if name == reference:
            out[name] = img
            continue
        entry: dict[str, Any] = {"reference": reference, "moving_file": str(files[name])}
        if cfg.skip_same_grid and _same_grid(img, ref_img):
            out[name], record[name] = img, {**entry, "skipped": True}
            log.info("case %s: %s is on the grid of %s; not registered", case, name, reference)
            continue
        data = np.asarray(img.dataobj, dtype=np.float32)
        try:
            moving = to_sitk(data, img.affine)
            transform, info = register_rigid(fixed, moving, cfg)
        except RuntimeError as exc:
            raise InputError(f"rigid registration of {name} to {reference} failed: {exc}",
                             case=case, file=files[name]) from exc
        log.info("case %s: registered %s to %s: Mattes MI %.4f (initial %.4f), rotation "
                 "%.2f deg, translation %.2f mm, %d iterations", case, name, reference,
                 info["metric"], info["initial_metric"], info["rotation_deg"],
                 info["translation_mm"], info["iterations"])
        problem = _implausible(info, cfg)
        if problem is not None:
            raise InputError(f"implausible rigid registration of {name} to {reference} "
                             f"({files[reference]}): {problem}", case=case, file=files[name])
        resampled = sitk.Resample(moving, fixed, transform, sitk.sitkLinear,
                                  float(data.min()), sitk.sitkFloat32)
        out[name] = nib.Nifti1Image(from_sitk(resampled), ref_img.affine)
        record[name] = {**entry, "skipped": False, **info}
    return out, record


def check_label_grid(reference: str, ref_img: nib.Nifti1Image, label: nib.Nifti1Image,
                     case: str, files: dict[str, Path | str], label_file: Path | str) -> None:
    """With registration, the label must lie on the reference modality's grid.

    Raises:
        InputError: naming the case, the label file and the reference file, with both grids.
    """
    if _same_grid(label, ref_img):
        return
    raise InputError(
        f"the label is not on the grid of the registration reference {reference} "
        f"({files[reference]}): label shape {tuple(label.shape)}, affine "
        f"{np.round(label.affine, 4).tolist()}; reference shape {tuple(ref_img.shape)}, "
        f"affine {np.round(ref_img.affine, 4).tolist()}. Draw the label on the reference "
        f"image or choose it with --reference", case=case, file=label_file)


def transform_from_entry(entry: dict[str, Any]) -> sitk.Euler3DTransform:
    """Rebuild the stored transform (reference LPS point -> moving LPS point)."""
    transform = sitk.Euler3DTransform()
    transform.SetFixedParameters(entry["fixed_parameters"])
    transform.SetParameters(entry["parameters"])
    return transform
