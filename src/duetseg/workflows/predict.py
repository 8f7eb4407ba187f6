"""``duetseg predict``: new cases -> NIfTI masks in each input's own geometry.

Per case ``<case>`` the output folder gets:

* ``<case>.nii.gz``: the primary output's label map (uint8), shape and affine of the input;
* ``<case>_prob.nii.gz`` (``save_probabilities``): the primary output's class probabilities,
  float32, 4D (X, Y, Z, C) in the input's geometry;
* ``<case>_disagreement.nii.gz`` (``save_disagreement``): float32 map in [0, 1], see
  :func:`~duetseg.workflows.disagreement.disagreement_map`;

and ``disagreement.csv`` holds one row per case (see :data:`CSV_COLUMNS`).

A case lacking some of the run's modalities is accepted when the run was trained with
``train.modality_dropout`` > 0 (see :mod:`duetseg.workflows.missing`): the absent inputs are
zero-filled, the prediction comes from the branches that saw an image, the geometry from
the first present modality, and the row's ``modalities_used`` lists what was read.

Everything is computed in the original geometry: the probabilities of every output are put
back into the input's grid first (linear interpolation), then argmax, the optional
largest-component filter, the maps and the scores follow, so the scores describe exactly
the voxels a reader sees. Every file is written atomically, and ``disagreement.csv`` is
rewritten after each case: a killed run leaves complete files only, and running it again
(by default recomputing every case, or with ``skip_existing`` only the missing ones)
completes the set.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import numpy as np

from duetseg.atomic import remove_temporaries, save_text
from duetseg.data.discovery import discover_cases
from duetseg.data.geometry import restore_to_original, write_like_original
from duetseg.data.preprocess import fill_missing_modalities, preprocess_case
from duetseg.errors import ConfigError
from duetseg.export.model import load_model
from duetseg.inference.postprocess import keep_largest_component
from duetseg.output_spec import branch_modalities
from duetseg.progress import progress_bar
from duetseg.run.trained import predict_probabilities
from duetseg.workflows.disagreement import disagreement_map, normalised_entropy
from duetseg.workflows.missing import check_missing_allowed, modalities_used, present_outputs

__all__ = ["CSV_COLUMNS", "CasePrediction", "predict_case", "predict_folder",
           "trained_channels"]

CSV_COLUMNS = ("case", "disagreement", "entropy", "foreground_voxels", "volume_ml",
               "modalities_used")


def _outputs_of(out_dir: Path, case: str, probabilities: bool, disagreement: bool) -> list[Path]:
    paths = [out_dir / f"{case}.nii.gz"]
    if probabilities:
        paths.append(out_dir / f"{case}_prob.nii.gz")
    if disagreement:
        paths.append(out_dir / f"{case}_disagreement.nii.gz")
    return paths


def _read_rows(path: Path) -> dict[str, dict[str, str]]:
    """Rows of an existing ``disagreement.csv`` with all current columns (else none)."""
    if not path.is_file():
        return {}
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
                return {}
            return {row["case"]: row for row in reader}
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}


def _write_rows(rows: dict[str, dict], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for case in sorted(rows):
        writer.writerow(rows[case])
    save_text(buf.getvalue(), path)


@dataclasses.dataclass
class CasePrediction:
    """One case predicted, everything in the input's original geometry.

    Attributes:
        probabilities: output name -> (C, X, Y, Z) float32 probabilities.
        primary: the primary output's name.
        mask: (X, Y, Z) uint8 label map of the primary output (largest component applied
            when asked).
        disagreement: (X, Y, Z) float32 :func:`disagreement_map`.
        entropy: (X, Y, Z) float32 normalised entropy of the primary output.
        region: (X, Y, Z) bool, the voxels any output calls foreground.
        branches: how many branch outputs the prediction compares (0: a single network).
        present: the modalities the case had.
        properties: the case's preprocessing properties (original geometry).
    """

    probabilities: dict[str, np.ndarray]
    primary: str
    mask: np.ndarray
    disagreement: np.ndarray
    entropy: np.ndarray
    region: np.ndarray
    branches: int
    present: list[str]
    properties: dict

    @property
    def affine(self) -> np.ndarray:
        """Voxel -> world affine of the input (and of every array here)."""
        return np.asarray(self.properties["original_affine"], dtype=float)


def predict_case(run, spec, tta_flip: bool = False,
                 largest_component: bool = False) -> CasePrediction:
    """Preprocess one case as the model's cache was, predict it, restore the input geometry.

    Args:
        run: a :class:`~duetseg.run.trained.TrainedRun` (a run or an exported model).
        spec: the case's files (all of the model's modalities or, for a model trained with
            modality dropout, some of them).
        tta_flip: flip test-time augmentation (also on when the model's config sets it).
        largest_component: keep the largest connected component of each class of the mask.

    Returns:
        The case's outputs in the geometry of its (reference modality's) files.
    """
    modalities = list(run.preprocessing.settings.modalities)
    case = preprocess_case(dataclasses.replace(spec, label=None), run.preprocessing.settings)
    case = fill_missing_modalities(case, modalities)
    props = case.properties
    primary = run.method.primary_output
    present = [m for m in modalities if m in spec.images]
    branches = branch_modalities(run.method.outputs())
    cached = present_outputs(predict_probabilities(run, case.image, tta_flip=tta_flip or None),
                             modalities, present, branches)
    probs = {k: restore_to_original(v, props, is_label=False) for k, v in cached.items()}
    del cached
    mask = probs[primary].argmax(0).astype(np.uint8)
    # the scores cover every voxel that any output calls foreground, so a lesion only one
    # branch sees still counts (and an island removed below still counts as doubt)
    region = np.zeros(mask.shape, dtype=bool)
    for p in probs.values():
        region |= p.argmax(0) > 0
    if largest_component:
        mask = keep_largest_component(mask)
    return CasePrediction(
        probabilities=probs, primary=primary, mask=mask,
        disagreement=disagreement_map(probs, primary, branches),
        entropy=normalised_entropy(probs[primary]), region=region,
        branches=sum(1 for b in branches if b in probs), present=present, properties=props)


def _predict_case(run, spec, out_dir: Path, tta_flip: bool, largest_component: bool,
                  save_probabilities: bool, save_disagreement: bool) -> dict:
    """Predict one case, write its files and return its ``disagreement.csv`` row."""
    pred = predict_case(run, spec, tta_flip, largest_component)
    props, mask, dis = pred.properties, pred.mask, pred.disagreement
    if save_probabilities:
        write_like_original(pred.probabilities[pred.primary], props,
                            out_dir / f"{spec.case}_prob.nii.gz", dtype=np.float32)
    if save_disagreement:
        write_like_original(dis, props, out_dir / f"{spec.case}_disagreement.nii.gz",
                            dtype=np.float32)
    write_like_original(mask, props, out_dir / f"{spec.case}.nii.gz")
    voxel_ml = abs(float(np.linalg.det(pred.affine[:3, :3]))) / 1000
    fg = int((mask > 0).sum())
    has = bool(pred.region.any())
    return {
        "case": spec.case,
        "disagreement": f"{float(dis[pred.region].mean()) if has else math.nan:.6f}",
        "entropy": f"{float(pred.entropy[pred.region].mean()) if has else math.nan:.6f}",
        "foreground_voxels": fg,
        "volume_ml": f"{fg * voxel_ml:.4f}",
        "modalities_used": modalities_used(pred.present),
    }


def trained_channels(run) -> dict[str, int]:
    """The nnU-Net channel index of each of the run's modalities, for inputs without names.

    A run prepared from nnU-Net files keeps their channels (recorded in its preprocessing
    description, :attr:`duetseg.run.preprocessing.Preprocessing.channels`); any other run
    takes its modality order, channel ``i`` = the ``i``-th modality, as
    ``nnUNetv2_predict`` assumes.
    """
    if run.preprocessing.channels:
        return dict(run.preprocessing.channels)
    return {m: i for i, m in enumerate(run.preprocessing.settings.modalities)}


def predict_folder(run_dir: Path, input_path: Path, out_dir: Path, checkpoint: str = "best",
                   device: str = "auto", layout: str = "auto", tta_flip: bool = False,
                   progress: bool = True, largest_component: bool = False,
                   save_probabilities: bool = False, save_disagreement: bool = False,
                   skip_existing: bool = False, backend: str = "auto") -> list[Path]:
    """Segment every case found in ``input_path`` with a trained run or an exported model.

    Cases are read with the run's modalities and preprocessed exactly as its cache was; each
    mask is written as ``<out_dir>/<case>.nii.gz`` with the input's shape and affine (see the
    module docstring for the optional files). ``disagreement.csv`` has, per case, the mean
    of :func:`disagreement_map` and of the primary output's normalised entropy over the
    voxels any output labels foreground (``nan`` when none does), the number of foreground
    voxels of the written mask and its volume in ml. High disagreement or entropy = check
    this case first; an empty mask (``foreground_voxels`` 0) deserves a look too.
    ``modalities_used`` lists the modalities the case was predicted from (``t1ce+t2``).

    A case may lack some of the run's modalities (not all) if the run was trained with
    ``train.modality_dropout`` > 0: see :mod:`duetseg.workflows.missing`.

    Args:
        run_dir: trained run directory, or a model file from ``duetseg export``.
        input_path: BraTS-style folder (2018-2021 or 2023+ names), nnU-Net raw dataset
            (``imagesTs/`` when it also has ``imagesTr/``), flat folder of nnU-Net channel
            files (``<case>_0000.nii.gz``; channels named by a ``dataset.json`` in it, else
            :func:`trained_channels`) or CSV manifest.
        out_dir: output folder (created); must differ from the input folder.
        checkpoint: "best" or "last" (a run directory only).
        device: "auto", "cpu", "cuda", ...
        layout: input layout ("auto", "brats", "nnunet", "csv", "nnunet_flat").
        tta_flip: flip test-time augmentation (also on when the run's config sets it).
        progress: show a progress bar.
        largest_component: keep only the largest connected component of each foreground
            class of the mask (also on when the run's config sets it); the probability
            maps are left as predicted.
        save_probabilities: also write ``<case>_prob.nii.gz``.
        save_disagreement: also write ``<case>_disagreement.nii.gz``.
        skip_existing: keep cases whose files and ``disagreement.csv`` row already exist
            (default: every case is predicted again and overwritten).
        backend: ``torch``, ``onnxruntime`` (a model file exported with its ONNX graph) or
            ``auto`` (see :func:`duetseg.export.load_model`).

    Returns:
        Paths of the masks of all cases (written or kept).

    Raises:
        ConfigError: output folder equal to the input folder, or a run that cannot be
            loaded.
        ModelFileError: a model file that cannot be used (names the file and the fault).
        InputError: unreadable or inconsistent input (names the case and file), a case
            with none of the run's modalities, or one lacking a modality when the run was
            trained without ``train.modality_dropout``.
    """
    input_path, out_dir = Path(input_path), Path(out_dir)
    if out_dir.resolve() == (input_path if input_path.is_dir() else input_path.parent).resolve():
        raise ConfigError(f"output folder {out_dir} must differ from the input folder")
    run = load_model(run_dir, checkpoint, device, backend)
    largest_component = largest_component or run.cfg.inference.largest_component
    modalities = list(run.preprocessing.settings.modalities)
    specs = discover_cases(input_path, modalities, layout, allow_missing=True, split="test",
                           channels=trained_channels(run))
    check_missing_allowed(specs, modalities, run.cfg.train.modality_dropout)
    remove_temporaries(out_dir)  # left by a killed atomic write
    csv_path = out_dir / "disagreement.csv"
    old = _read_rows(csv_path) if skip_existing else {}
    files = {s.case: _outputs_of(out_dir, s.case, save_probabilities, save_disagreement)
             for s in specs}
    # a case is complete when its files exist and the CSV has its row (the row is written
    # last); complete cases keep their rows while the others are predicted
    rows = {c: row for c, row in old.items()
            if c in files and all(p.is_file() for p in files[c])}
    for spec in progress_bar([s for s in specs if s.case not in rows], desc="predict",
                     disable=not progress):
        rows[spec.case] = _predict_case(run, spec, out_dir, tta_flip, largest_component,
                                        save_probabilities, save_disagreement)
        _write_rows(rows, csv_path)
    _write_rows(rows, csv_path)
    return [files[s.case][0] for s in specs]
