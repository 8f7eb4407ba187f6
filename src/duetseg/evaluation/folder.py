"""Score a folder of predicted label maps against a folder of reference label maps.

Files are matched by case name (``<case>.nii.gz`` or ``<case>.nii``). Arrays are compared
in their stored voxel order (no reorientation): prediction and reference must share shape
and affine, and the spacing comes from the reference header.

``summary.json`` holds duetseg's summary under ``"prediction"`` (the metrics of
``FOLDER_METRICS``: those of ``duetseg evaluate`` plus IoU and normalised surface Dice),
``nsd_tolerance_mm``, and nnU-Net v2's ``foreground_mean``, ``mean`` and
``metric_per_case`` (see :mod:`duetseg.evaluation.nnunet_summary`). ``docs/metrics.md``
describes every field.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from duetseg.errors import ConfigError, InputError
from duetseg.evaluation.metrics import case_metrics
from duetseg.evaluation.nnunet_summary import CaseCounts, nnunet_fields
from duetseg.evaluation.overlap import NSD_TOLERANCE_MM, confusion_counts, iou, surface_dice
from duetseg.evaluation.summary import (
    FOLDER_METRICS,
    summarize,
    write_metrics_csv,
    write_summary,
)
from duetseg.run.layout import EvalDir

__all__ = ["EvaluationInputError", "evaluate_folder", "find_cases", "OUTPUT_NAME"]

logger = logging.getLogger(__name__)

OUTPUT_NAME = "prediction"
_AFFINE_ATOL = 1e-4


class EvaluationInputError(InputError, ValueError):
    """Bad or mismatched evaluation input (an ``InputError`` that is also a ``ValueError``)."""


def _case_name(path: Path) -> str | None:
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return None


def find_cases(folder: Path) -> dict[str, Path]:
    """Map case name → NIfTI file for every ``*.nii.gz`` / ``*.nii`` file in ``folder``.

    Hidden files (such as ``.tmp-*`` left by an interrupted atomic write) are skipped.

    Args:
        folder: directory to list (not recursive).

    Returns:
        Case names to paths, sorted by case name.

    Raises:
        EvaluationInputError: if the folder does not exist or a case has both a ``.nii`` and
            a ``.nii.gz`` file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationInputError(f"folder does not exist: {folder}", file=folder)
    cases: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        case = _case_name(path)
        if case is None:
            continue
        if case in cases:
            raise EvaluationInputError(
                f"two files for one case: {cases[case]} and {path}", case=case, file=path
            )
        cases[case] = path
    return dict(sorted(cases.items()))


def _load_labels(path: Path, case: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Load a label map as int64 with its affine and 3D spacing.

    Raises:
        EvaluationInputError: if the file is not 3D or holds non-integer values.
    """
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise EvaluationInputError(f"expected a 3D label map, got shape {data.shape}",
                                   case=case, file=path)
    if np.issubdtype(data.dtype, np.floating):
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            raise EvaluationInputError("label map holds non-integer values", case=case,
                                       file=path)
        data = rounded
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return data.astype(np.int64, copy=False), np.asarray(img.affine, dtype=np.float64), zooms


def _apply_mapping(labels: np.ndarray, mapping: Mapping[int, int], case: str,
                   path: Path) -> np.ndarray:
    """Map original reference values to classes; unmapped values are errors."""
    values = np.unique(labels)
    unknown = [int(v) for v in values if int(v) not in mapping]
    if unknown:
        raise EvaluationInputError(
            f"reference values {unknown} are not in label_mapping {dict(mapping)}",
            case=case, file=path,
        )
    out = np.zeros_like(labels)
    for v in values:
        out[labels == v] = int(mapping[int(v)])
    return out


def _class_metrics(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...] | None,
                   tolerance_mm: float) -> tuple[dict[str, float], dict[str, int]]:
    """The ``FOLDER_METRICS`` of one binary mask pair, and its voxel counts."""
    counts = confusion_counts(pred, ref)
    metrics = {**case_metrics(pred, ref, spacing), "iou": iou(counts),
               "nsd": surface_dice(pred, ref, spacing, tolerance_mm)}
    return metrics, counts


def evaluate_folder(
    pred_dir: Path,
    ref_dir: Path,
    out_dir: Path,
    classes: Sequence[int] | None = None,
    label_mapping: Mapping[int, int] | None = None,
    nsd_tolerance_mm: float = NSD_TOLERANCE_MM,
) -> dict:
    """Compute per-case metrics for a folder of predictions and write them with a summary.

    Args:
        pred_dir: folder of predicted label maps (class indices).
        ref_dir: folder of reference label maps.
        out_dir: where ``metrics.csv`` and ``summary.json`` are written.
        classes: classes to score; default all non-zero values found in references ∪
            predictions, or ``[1]`` if there are none (a class absent from both files of a case
            scores as both-empty).
        label_mapping: optional map from reference values to class indices, applied to the
            references only; a reference value not in it is an error.
        nsd_tolerance_mm: tolerance of the normalised surface Dice, in mm.

    Returns:
        What ``summary.json`` holds: under ``"prediction"`` the summary of
        ``duetseg.evaluation.summary.summarize``, ``nsd_tolerance_mm``, and the nnU-Net
        fields ``foreground_mean``, ``mean``, ``metric_per_case`` (NaN where undefined).

    Raises:
        ConfigError: a tolerance that is not positive.
        EvaluationInputError: (a ``ValueError``) if a reference has no prediction, if a
            prediction's shape or affine differs from its reference, or on unreadable labels.
    """
    pred_dir, ref_dir, out_dir = Path(pred_dir), Path(ref_dir), Path(out_dir)
    if not nsd_tolerance_mm > 0:
        raise ConfigError(f"the NSD tolerance must be positive (mm), got {nsd_tolerance_mm}")
    preds = find_cases(pred_dir)
    refs = find_cases(ref_dir)
    if not refs:
        raise EvaluationInputError(f"no reference NIfTI files in {ref_dir}", file=ref_dir)
    missing = [c for c in refs if c not in preds]
    if missing:
        raise EvaluationInputError(
            f"{len(missing)} reference case(s) have no prediction in {pred_dir}: "
            + ", ".join(missing)
        )
    extra = [c for c in preds if c not in refs]
    if extra:
        msg = f"ignoring {len(extra)} prediction(s) without reference: {', '.join(extra)}"
        warnings.warn(msg, UserWarning, stacklevel=2)
        logger.warning(msg)

    fixed_classes = None if classes is None else [int(c) for c in classes]
    per_case: dict[str, dict[int, dict[str, float]]] = {}
    counted: list[CaseCounts] = []
    found: set[int] = set()
    for case, ref_path in refs.items():
        pred_path = preds[case]
        ref, ref_affine, spacing = _load_labels(ref_path, case)
        pred, pred_affine, _ = _load_labels(pred_path, case)
        if pred.shape != ref.shape:
            raise EvaluationInputError(
                f"prediction {pred_path} has shape {pred.shape}, reference {ref_path} has "
                f"shape {ref.shape}", case=case, file=pred_path,
            )
        if not np.allclose(pred_affine, ref_affine, rtol=0.0, atol=_AFFINE_ATOL):
            raise EvaluationInputError(
                f"prediction {pred_path} affine {pred_affine.round(4).tolist()} differs from "
                f"reference {ref_path} affine {ref_affine.round(4).tolist()}",
                case=case, file=pred_path,
            )
        if label_mapping is not None:
            ref = _apply_mapping(ref, label_mapping, case, ref_path)
        if fixed_classes is None:
            present = {int(v) for v in np.union1d(np.unique(ref), np.unique(pred)) if v > 0}
            found |= present
            todo = sorted(present)
        else:
            todo = fixed_classes
        scored = {c: _class_metrics(pred == c, ref == c, spacing, nsd_tolerance_mm)
                  for c in todo}
        per_case[case] = {c: metrics for c, (metrics, _) in scored.items()}
        counted.append(CaseCounts(pred_path, ref_path, int(ref.size),
                                  {c: counts for c, (_, counts) in scored.items()}))
        logger.debug("scored case %s: %s", case, per_case[case])

    if fixed_classes is not None:
        final_classes = fixed_classes
    else:  # nothing found anywhere: score the binary foreground class
        final_classes = sorted(found) or [1]
    empty = np.zeros(1, dtype=bool)
    both_empty, _ = _class_metrics(empty, empty, None, nsd_tolerance_mm)
    rows = []
    for case, scores in per_case.items():
        for c in final_classes:
            metrics = scores.get(c, both_empty)
            rows.append({"case": case, "output": OUTPUT_NAME, "class": c, **metrics})

    summary = {**summarize(rows, FOLDER_METRICS),  # {"prediction": ...}
               "nsd_tolerance_mm": float(nsd_tolerance_mm),
               **nnunet_fields(counted, final_classes)}
    out_dir.mkdir(parents=True, exist_ok=True)
    out = EvalDir(out_dir)
    write_metrics_csv(rows, out.metrics_file, FOLDER_METRICS)
    write_summary(summary, out.summary_file)
    return summary
