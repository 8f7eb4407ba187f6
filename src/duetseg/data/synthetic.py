"""A synthetic two-modality "brain lesion" dataset that behaves like the real problem.

Every case is a head-shaped volume (background exactly 0) with tissue texture, dark
ventricle-like blobs and one irregular lesion whose full extent is the label. The two
modalities carry complementary information:

* modality A (``t1ce``-like) shows the lesion core sharply (a bright enhancing rim around a
  darker centre) but not the outer extent;
* modality B (``t2``-like) shows the full extent bright, and also 1-3 look-alike bright blobs
  that are not lesion (label 0) and that are plain in A.

A network that sees both modalities can recover the label; either modality alone cannot
(A lacks the extent, B cannot tell the look-alikes apart). Each modality gets a smooth
multiplicative bias field, Rician noise and its own per-case intensity scale. Further
modalities (a third name and on) are plain anatomy with a faint dark lesion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from duetseg.atomic import atomic_path

__all__ = ["SyntheticCase", "make_synthetic_case", "make_synthetic_dataset"]


@dataclass
class SyntheticCase:
    """One generated case (arrays indexed (x, y, z)).

    Attributes:
        images: modality name -> float32 image.
        label: uint8 lesion mask (1 = lesion, the full extent).
        head: bool mask of the head (images are exactly 0 outside it).
        brain: bool mask of the brain (inside the skull-like rim).
        core: bool mask of the lesion core (enhancing rim and centre; visible in A).
        enhancing: bool mask of the enhancing rim of the core (bright in A).
        lookalikes: bool mask of the look-alike blobs (bright in B, label 0).
        affine: 4x4 voxel-to-world matrix carrying the spacing.
    """

    images: dict[str, np.ndarray]
    label: np.ndarray
    head: np.ndarray
    brain: np.ndarray
    core: np.ndarray
    enhancing: np.ndarray
    lookalikes: np.ndarray
    affine: np.ndarray


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear-interpolation matrix (n_out, n_in) mapping a coarse axis onto a fine one."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    w = (pos - lo).astype(np.float32)
    mat = np.zeros((n_out, n_in), dtype=np.float32)
    mat[np.arange(n_out), lo] = 1.0 - w
    mat[np.arange(n_out), lo + 1] = w
    return mat


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Smooth Gaussian random field with zero mean and unit standard deviation."""
    # Filter on a coarser grid, then upsample separably (cheap matrix products).
    factor = int(np.clip(sigma // 1.5, 1, 4))
    coarse = tuple(max(2, -(-s // factor)) for s in shape)
    field = ndimage.gaussian_filter(rng.standard_normal(coarse).astype(np.float32),
                                    sigma / factor, mode="wrap")
    if factor > 1:
        for axis, (n_out, n_in) in enumerate(zip(shape, coarse, strict=True)):
            field = np.moveaxis(np.tensordot(_interp_matrix(n_out, n_in), field,
                                             axes=([1], [axis])), 0, axis)
    field -= field.mean()
    return (field / (field.std() + 1e-8)).astype(np.float32)


def _blob_field(coords: list[np.ndarray], centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Minimum over ellipsoids of the normalised ellipsoid radius (< 1 inside)."""
    out = np.full(coords[0].shape, np.inf, dtype=np.float32)
    for c, r in zip(centres, radii, strict=True):
        d = sum(((coords[i] - c[i]) / r[i]) ** 2 for i in range(3))
        np.minimum(out, np.sqrt(d), out=out)
    return out


def _irregular_blob(rng: np.random.Generator, coords: list[np.ndarray], centre: np.ndarray,
                    size: float, n_parts: int, noise: np.ndarray) -> np.ndarray:
    """Union of a few ellipsoids around ``centre`` (mm), deformed by ``noise``."""
    offsets = rng.normal(0.0, 0.45 * size, size=(n_parts, 3))
    offsets[0] = 0.0
    radii = size * rng.uniform(0.6, 1.0, size=(n_parts, 3))
    field = _blob_field(coords, centre + offsets, radii)
    return field + 0.18 * np.clip(noise, -2.5, 2.5)


def _random_point(rng: np.random.Generator, semi: np.ndarray, max_r: float) -> np.ndarray:
    """Random point (mm, head-centred) at normalised head radius below ``max_r``."""
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    return direction * semi * max_r * rng.uniform(0.0, 1.0) ** (1.0 / 3.0)


def make_synthetic_case(rng: np.random.Generator, shape: tuple[int, int, int] = (64, 64, 48),
                        spacing: tuple[float, float, float] = (1.0, 1.0, 1.5),
                        modalities: tuple[str, ...] = ("t1ce", "t2")) -> SyntheticCase:
    """Generate one synthetic case.

    Args:
        rng: random generator (the case is a pure function of its state).
        shape: volume shape (x, y, z) in voxels.
        spacing: voxel spacing (x, y, z) in mm.
        modalities: modality names; the first is A-like, the second B-like (at least 2).

    Returns:
        The generated :class:`SyntheticCase`.

    Raises:
        ValueError: fewer than two modalities or a volume too small (< 8 voxels on an axis).
    """
    if len(modalities) < 2:
        raise ValueError("make_synthetic_case needs at least two modalities")
    if min(shape) < 8:
        raise ValueError(f"shape {shape} too small: at least 8 voxels per axis")
    shape = tuple(int(s) for s in shape)
    sp = np.asarray(spacing, dtype=np.float64)
    extent = np.asarray(shape) * sp
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * np.float32(s)
            for n, s in zip(shape, sp, strict=True)]
    coords = [np.broadcast_to(ax.reshape([-1 if i == a else 1 for i in range(3)]), shape)
              for a, ax in enumerate(axes)]
    smooth_mm = 0.12 * float(extent.min())  # correlation length of the smooth fields, mm
    sig = tuple(smooth_mm / s for s in sp)

    def field(scale: float = 1.0) -> np.ndarray:
        return _smooth_noise(rng, shape, float(np.mean(sig)) * scale)

    # Head: ellipsoid with an irregular outline.
    semi = 0.5 * extent * rng.uniform(0.78, 0.9, size=3)
    head_r = np.sqrt(sum((coords[i] / semi[i]) ** 2 for i in range(3)))
    head = head_r + 0.04 * field() < 1.0
    brain = head_r + 0.04 * field() < 0.86  # inside the "skull"
    scale = float(semi.min())

    # Anatomy: scalp/skull rim, grey/white matter texture, ventricle-like dark blobs.
    tissue = np.where(field(0.6) > 0.2, 0.75, 0.55).astype(np.float32)
    tissue = ndimage.gaussian_filter(tissue, 0.8) + 0.04 * field(0.3)
    vent_c = np.array([[d * 0.18 * semi[0], 0.1 * semi[1], 0.0] for d in (-1, 1)])
    vent_r = np.array([[0.12, 0.3, 0.22]] * 2) * semi
    ventricles = _blob_field(coords, vent_c, vent_r) + 0.1 * field() < 1.0
    anatomy = np.where(brain, tissue, 0.35 + 0.05 * field(0.5)).astype(np.float32)

    # Lesion: irregular union of ellipsoids inside the brain.
    size = scale * rng.uniform(0.3, 0.42)
    centre = _random_point(rng, semi, 0.45)
    lesion_f = _irregular_blob(rng, coords, centre, size, int(rng.integers(2, 5)), field(0.4))
    lesion = (lesion_f < 1.0) & brain
    if not lesion.any():  # degenerate (tiny volumes): keep at least the centre voxel
        lesion[tuple(np.clip(np.round(centre / sp + (np.asarray(shape) - 1) / 2).astype(int),
                             0, np.asarray(shape) - 1))] = True
    # Core: its own irregular blob inside the lesion, so the extent is not a dilation of it.
    core_c = centre + rng.normal(0.0, 0.2 * size, size=3)
    core_f = _irregular_blob(rng, coords, core_c, size * rng.uniform(0.6, 0.8),
                             int(rng.integers(1, 3)), field(0.4))
    core = (core_f < 1.0) & ndimage.binary_erosion(lesion, iterations=1)
    if not core.any():  # a tiny lesion: all core
        core = lesion.copy()
    rim = core & (core_f > 0.55)
    if not rim.any():
        rim = core
    necrosis = core & ~rim

    # Look-alikes: 1-3 bright blobs in B away from the lesion.
    near_lesion = ndimage.binary_dilation(lesion, iterations=2)
    lookalikes = np.zeros(shape, dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(20):
            c = _random_point(rng, semi, 0.6)
            s = scale * rng.uniform(0.25, 0.38)
            if np.linalg.norm(c - centre) > 1.3 * (size + s):
                break
        blob = _irregular_blob(rng, coords, c, s, int(rng.integers(1, 4)), field(0.4)) < 1.0
        lookalikes |= blob & brain & ~near_lesion

    images: dict[str, np.ndarray] = {}
    for m, name in enumerate(modalities):
        img = anatomy.copy()
        img[ventricles & brain] = 0.15 if m != 1 else 0.9  # CSF dark in A, bright in B
        if m == 0:  # A: sharp enhancing rim, darker necrotic centre, extent invisible
            img[rim] = 1.35
            img[necrosis] = 0.3
        elif m == 1:  # B: full extent bright, look-alikes equally bright
            bright = 1.25 + 0.05 * field(0.3)
            img[lesion] = bright[lesion]
            img[lookalikes] = bright[lookalikes]
        else:  # further modalities: plain anatomy, faint hypo-intense lesion
            img[lesion] *= 0.85
        img = ndimage.gaussian_filter(img, 0.6)
        img *= np.exp(0.08 * field(1.5))  # smooth multiplicative bias field
        sigma_n = 0.04
        img = np.sqrt((img + sigma_n * rng.standard_normal(shape)) ** 2
                      + (sigma_n * rng.standard_normal(shape)) ** 2)  # Rician noise
        img *= rng.uniform(50.0, 3000.0)  # per-case intensity scale
        img[~head] = 0.0
        images[name] = img.astype(np.float32)

    affine = np.diag([*sp, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2.0 * sp
    return SyntheticCase(images=images, label=lesion.astype(np.uint8), head=head, brain=brain,
                         core=core, enhancing=rim, lookalikes=lookalikes, affine=affine)


def make_synthetic_dataset(out: Path, n_cases: int = 24,
                           shape: tuple[int, int, int] = (64, 64, 48),
                           spacing: tuple[float, float, float] = (1.0, 1.0, 1.5),
                           seed: int = 0,
                           modalities: tuple[str, ...] = ("t1ce", "t2")) -> Path:
    """Write a BraTS-layout synthetic dataset ``<out>/<case>/<case>_<modality>.nii.gz``.

    Every case gets a ``<case>_seg.nii.gz`` label; which cases count as labelled is decided
    later by the splits. Case ``i`` depends only on ``(seed, i)``.

    Args:
        out: output folder (created).
        n_cases: number of cases, named ``synth_000``, ``synth_001``, ...
        shape: volume shape (x, y, z).
        spacing: voxel spacing (x, y, z) in mm, written into the affine.
        seed: random seed.
        modalities: modality names (first A-like, second B-like).

    Returns:
        ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n_cases):
        case = f"synth_{i:03d}"
        data = make_synthetic_case(np.random.default_rng([seed, i]), shape, spacing, modalities)
        arrays = {f"{case}_{m}": img for m, img in data.images.items()}
        arrays[f"{case}_seg"] = data.label
        for stem, arr in arrays.items():
            img = nib.Nifti1Image(arr, data.affine)
            img.header.set_xyzt_units("mm")
            with atomic_path(out / case / f"{stem}.nii.gz", suffix=".nii.gz") as tmp:
                nib.save(img, tmp)
    return out
