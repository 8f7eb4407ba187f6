"""``duetseg predict``: new cases -> NIfTI masks in each input's own geometry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from duetseg.atomic import atomic_path
from duetseg.data.discovery import discover_cases
from duetseg.data.geometry import restore_to_original, write_like_original
from duetseg.data.preprocess import preprocess_case
from duetseg.errors import ConfigError
from duetseg.workflows.evaluate import predict_probabilities
from duetseg.workflows.loading import load_trained_run

__all__ = ["predict_folder"]


def predict_folder(run_dir: Path, input_path: Path, out_dir: Path, checkpoint: str = "best",
                   device: str = "auto", layout: str = "auto", tta_flip: bool = False,
                   progress: bool = True) -> list[Path]:
    """Segment every case found in ``input_path`` with a trained run.

    Cases are read with the run's modalities and preprocessed exactly as its cache was; each
    mask is written as ``<out_dir>/<case>.nii.gz`` with the input's shape and affine. A CSV
    ``disagreement.csv`` gives, per case, the mean absolute difference between the branches'
    foreground probabilities inside the predicted mask (high = check this case).

    Returns:
        Paths of the written masks.

    Raises:
        ConfigError: output folder equal to the input folder.
        InputError: unreadable or inconsistent input (names the case and file).
    """
    input_path, out_dir = Path(input_path), Path(out_dir)
    if out_dir.resolve() == (input_path if input_path.is_dir() else input_path.parent).resolve():
        raise ConfigError(f"output folder {out_dir} must differ from the input folder")
    run = load_trained_run(run_dir, checkpoint, device)
    settings = run.cache.settings
    specs = discover_cases(input_path, list(settings.modalities), layout)
    primary = run.method.primary_output
    written, lines = [], ["case,disagreement,foreground_voxels"]
    for spec in tqdm(specs, desc="predict", disable=not progress):
        case = preprocess_case(dataclasses.replace(spec, label=None), settings)
        probs = predict_probabilities(run, case.image, tta_flip=tta_flip or None)
        pred = restore_to_original(probs[primary], case.properties, is_label=False).argmax(0)
        target = out_dir / f"{spec.case}.nii.gz"
        write_like_original(pred.astype(np.uint8), case.properties, target)
        written.append(target)
        branches = [v for k, v in probs.items() if k.startswith("branch_")]
        mask = probs[primary].argmax(0) > 0
        score = float("nan")
        if len(branches) >= 2 and mask.any():
            fg = np.stack([b[1:].sum(0) for b in branches])
            score = float(np.abs(fg[:, None] - fg[None]).max((0, 1))[mask].mean())
        lines.append(f"{spec.case},{score:.6f},{int(mask.sum())}")
    with atomic_path(out_dir / "disagreement.csv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return written
