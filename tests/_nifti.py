"""Tiny synthetic NIfTI helpers shared by the data tests (not collected as tests)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["RAS", "LPS", "PERMUTED", "write_nifti", "head_image", "block_label", "make_brats"]

SHAPE = (20, 24, 16)
RAS = np.diag([1.0, 1.2, 2.0, 1.0])
RAS[:3, 3] = [-10.0, 5.0, 3.0]
LPS = np.diag([-1.0, -1.2, 2.0, 1.0])
LPS[:3, 3] = [12.0, 30.0, -4.0]
# array axis 0 -> world S, axis 1 -> world L (flipped R), axis 2 -> world A
PERMUTED = np.array([[0.0, -1.2, 0.0, 20.0],
                     [0.0, 0.0, 2.0, -7.0],
                     [1.0, 0.0, 0.0, 1.5],
                     [0.0, 0.0, 0.0, 1.0]])


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray = RAS) -> Path:
    """Write ``data`` as NIfTI (qform and sform set) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path


def head_image(rng: np.random.Generator, shape=SHAPE, scale: float = 100.0) -> np.ndarray:
    """A positive ellipsoid 'head' (zero outside) with noise, float32."""
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    inside = sum(g ** 2 for g in grid) < 0.35
    img = np.where(inside, scale * (1.0 + rng.random(shape)), 0.0)
    return img.astype(np.float32)


def block_label(rng: np.random.Generator, shape=SHAPE, values=(0, 1, 2)) -> np.ndarray:
    """A label made of 2x2x2 blocks, non-zero only in the central region (inside the head)."""
    coarse = rng.choice(values, size=tuple(n // 2 for n in shape)).astype(np.uint8)
    lab = coarse.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    keep = np.zeros(shape, dtype=bool)
    keep[8:12, 8:16, 6:10] = True
    return np.where(keep, lab, 0).astype(np.uint8)


def make_brats(root: Path, case: str, rng: np.random.Generator,
               modalities=("t1ce", "t2"), affine=RAS, label: np.ndarray | None = None,
               labelled: bool = True) -> dict[str, Path]:
    """Write one BraTS-style case folder; return modality (and 'seg') -> path."""
    paths = {}
    for mod in modalities:
        paths[mod] = write_nifti(root / case / f"{case}_{mod}.nii.gz", head_image(rng), affine)
    if labelled:
        lab = block_label(rng) if label is None else label
        paths["seg"] = write_nifti(root / case / f"{case}_seg.nii.gz", lab, affine)
    return paths
