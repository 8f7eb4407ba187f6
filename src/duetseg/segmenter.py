"""The Python API: :class:`Segmenter` predicts one case from files or arrays.

``Segmenter.load("model.zip")`` opens a model file from ``duetseg export``,
``Segmenter.from_run(run_dir)`` a run directory. :meth:`Segmenter.predict` takes one image per
modality, a NIfTI path or a 3D array, and returns a :class:`Segmentation` in the input's
geometry. It runs the ``duetseg predict`` pipeline itself
(:func:`duetseg.workflows.predict.predict_case`): arrays are written to a temporary NIfTI
file with the given affine and then read like any input, so the preprocessing (resampling,
crop, normalisation) and the return to the input grid are those of the command line.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duetseg.errors import InputError

__all__ = ["Segmentation", "Segmenter"]

ImageInput = str | os.PathLike | np.ndarray


@dataclass
class Segmentation:
    """The prediction of one case, in the input's geometry (shape (X, Y, Z) of the input).

    Attributes:
        mask: (X, Y, Z) uint8 class labels (0 = background).
        probabilities: (C, X, Y, Z) float32 class probabilities of the primary output.
        disagreement: (X, Y, Z) float32 map in [0, 1], the largest difference between the
            branches' foreground probabilities, for multi-branch networks (None for a
            single network).
        affine: the 4x4 voxel -> world affine of the arrays (the input's).
        modalities_used: the modalities the prediction was made from.
    """

    mask: np.ndarray
    probabilities: np.ndarray
    disagreement: np.ndarray | None
    affine: np.ndarray
    modalities_used: list[str]


class Segmenter:
    """A trained model that segments cases given as files or arrays.

    Args:
        model: a loaded model (:func:`duetseg.export.load_model`); usually made by
            :meth:`load` or :meth:`from_run`.
    """

    def __init__(self, model):
        self.model = model

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto",
             backend: str = "auto") -> Segmenter:
        """Open a model file from ``duetseg export``.

        Args:
            path: the model file.
            device: "auto", "cpu", "cuda", ...
            backend: ``torch``, ``onnxruntime`` (a file exported with ``--onnx``) or
                ``auto``: onnxruntime on the CPU when the file holds the ONNX graph and
                onnxruntime is installed, else torch.

        Raises:
            ModelFileError: the file fails verification or cannot serve ``backend``.
        """
        from duetseg.export.model import load_model_file

        return cls(load_model_file(path, device, backend))

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, checkpoint: str = "best",
                 device: str = "auto") -> Segmenter:
        """Open a trained run directory.

        Args:
            run_dir: the run.
            checkpoint: "best" or "last".
            device: "auto", "cpu", "cuda", ...

        Raises:
            ConfigError: not a run directory or no usable checkpoint.
        """
        from duetseg.run.trained import load_trained_run

        return cls(load_trained_run(run_dir, checkpoint, device))

    @property
    def modalities(self) -> list[str]:
        """The modalities the model reads, in input-channel order."""
        return list(self.model.preprocessing.modalities)

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return int(self.model.preprocessing.num_classes)

    def predict(self, images: Mapping[str, ImageInput], affine: np.ndarray | None = None,
                tta_flip: bool = False, largest_component: bool | None = None,
                case: str = "case") -> Segmentation:
        """Segment one case.

        Args:
            images: modality -> NIfTI path or 3D array (every modality of the model; a model
                trained with modality dropout accepts a subset).
            affine: the 4x4 voxel -> world (mm) affine of the arrays (default identity:
                1 mm voxels); files carry their own.
            tta_flip: flip test-time augmentation.
            largest_component: keep the largest connected component per class (None: the
                model's config).
            case: a name for messages.

        Returns:
            The mask, probabilities and disagreement on the input's grid.

        Raises:
            InputError: an unknown modality, an array that is not 3D, a bad affine, none
                of the modalities, or unreadable / inconsistent files.
        """
        from duetseg.data.layouts import CaseSpec
        from duetseg.workflows.missing import check_missing_allowed
        from duetseg.workflows.predict import predict_case

        unknown = [m for m in images if m not in self.modalities]
        if unknown:
            raise InputError(f"unknown modalities {unknown}; the model reads {self.modalities}",
                             case=case)
        if not images:
            raise InputError(f"no image given; the model reads {self.modalities}", case=case)
        affine = np.eye(4) if affine is None else np.asarray(affine, dtype=float)
        if affine.shape != (4, 4) or not np.isfinite(affine).all():
            raise InputError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}",
                             case=case)
        lc = self.model.cfg.inference.largest_component if largest_component is None else (
            largest_component)
        with tempfile.TemporaryDirectory(prefix="duetseg-") as tmp:
            files = {m: _as_file(images[m], affine, Path(tmp), m, case)
                     for m in self.modalities if m in images}
            missing = {m: Path(f"<{m} not given>") for m in self.modalities if m not in images}
            spec = CaseSpec(case=case, images=files, label=None, missing=missing)
            check_missing_allowed([spec], self.modalities, self.model.cfg.train.modality_dropout)
            pred = predict_case(self.model, spec, tta_flip, lc)
        return Segmentation(
            mask=pred.mask, probabilities=pred.probabilities[pred.primary],
            disagreement=pred.disagreement if pred.branches >= 2 else None,
            affine=pred.affine, modalities_used=pred.present)


def _as_file(image: ImageInput, affine: np.ndarray, folder: Path, modality: str,
             case: str) -> Path:
    """``image`` itself when it is a path, else the array written as NIfTI in ``folder``."""
    if isinstance(image, (str, os.PathLike)):
        return Path(image)
    import nibabel as nib

    array = np.asarray(image)
    if array.ndim != 3 or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"{modality}: expected a 3D numeric array, got shape {array.shape} "
                         f"and dtype {array.dtype}", case=case)
    path = folder / f"{case}_{modality}.nii.gz"
    nib.save(nib.Nifti1Image(array.astype(np.float32), affine), str(path))
    return path
