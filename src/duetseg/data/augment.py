"""Random crops and augmentation: geometric (identical for all modalities and the label) and
intensity (per modality; the label is unchanged).

Arrays: image ``(C, X, Y, Z)``, label ``(X, Y, Z)``. Crops read only the crop window, so
memory-mapped volumes are never loaded whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["crop_window", "random_crop", "random_flip_rot", "foreground_coords",
           "random_intensity_augment", "random_contrast_inversion", "random_rotate_scale"]


def foreground_coords(label: np.ndarray, max_points: int = 20000) -> np.ndarray:
    """Coordinates (N, 3) of foreground voxels, deterministically thinned to ``max_points``.

    Args:
        label: label volume (X, Y, Z).
        max_points: keep at most about this many (every k-th voxel in C order).

    Returns:
        int32 array of voxel coordinates (possibly empty).
    """
    coords = np.argwhere(np.asarray(label) > 0)
    if len(coords) > max_points:
        coords = coords[:: -(-len(coords) // max_points)]
    return coords.astype(np.int32)


def crop_window(shape: Sequence[int], crop_size: Sequence[int],
                start: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Source and destination slices of a crop, zero-padding axes smaller than the crop.

    An axis shorter than the crop is taken whole and centred in the output (symmetric
    padding); otherwise ``start`` picks the window.

    Args:
        shape: spatial shape of the volume.
        crop_size: spatial crop size.
        start: crop start per axis (ignored on padded axes).

    Returns:
        ``(source slices, destination slices)``.
    """
    src, dst = [], []
    for n, c, s in zip(shape, crop_size, start, strict=True):
        if n <= c:
            before = (c - n) // 2
            src.append(slice(0, n))
            dst.append(slice(before, before + n))
        else:
            s = int(np.clip(s, 0, n - c))
            src.append(slice(s, s + c))
            dst.append(slice(0, c))
    return tuple(src), tuple(dst)


def random_crop(image: np.ndarray, label: np.ndarray | None, crop_size: Sequence[int],
                rng: np.random.Generator, foreground_prob: float = 0.0,
                fg_coords: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A random crop of an image and its label (zero-padding first when too small).

    Args:
        image: (C, X, Y, Z) array, possibly a memory map (only the window is read).
        label: (X, Y, Z) array or None (unlabelled).
        crop_size: (cx, cy, cz).
        rng: random generator.
        foreground_prob: with this probability (labelled crops only) the crop is centred on
            a random foreground voxel (clipped to the volume), else uniform.
        fg_coords: precomputed :func:`foreground_coords` of ``label`` (computed if None).

    Returns:
        ``(image crop (C, cx, cy, cz) float32, label crop (cx, cy, cz) uint8 or None)``.

    Raises:
        ValueError: crop_size is not three positive integers, the image is not 4-D or the
            label shape differs.
    """
    crop = tuple(int(c) for c in crop_size)
    if len(crop) != 3 or min(crop) <= 0:
        raise ValueError(f"crop_size must be three positive integers, got {crop_size}")
    if image.ndim != 4:
        raise ValueError(f"image must be (C, X, Y, Z), got shape {image.shape}")
    shape = image.shape[1:]
    if label is not None and tuple(label.shape) != tuple(shape):
        raise ValueError(f"label shape {label.shape} does not match image shape {shape}")
    start = [int(rng.integers(0, max(n - c, 0) + 1)) for n, c in zip(shape, crop, strict=True)]
    if label is not None and foreground_prob > 0 and rng.random() < foreground_prob:
        coords = foreground_coords(label) if fg_coords is None else fg_coords
        if len(coords):
            centre = coords[int(rng.integers(len(coords)))]
            start = [int(v) - c // 2 for v, c in zip(centre, crop, strict=True)]
    src, dst = crop_window(shape, crop, start)
    img = np.zeros((image.shape[0], *crop), dtype=np.float32)
    img[(slice(None), *dst)] = image[(slice(None), *src)]
    lab = None
    if label is not None:
        lab = np.zeros(crop, dtype=np.uint8)
        lab[dst] = label[src]
    return img, lab


def random_flip_rot(image: np.ndarray, label: np.ndarray | None, rng: np.random.Generator,
                    flip: bool = True, rot90: bool = True
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Random k*90 degree rotation in the (x, y) plane and a flip along one random axis.

    The same transform is applied to every modality and to the label. The rotation is only
    applied when X == Y (it would change the crop shape otherwise).

    Args:
        image: (C, X, Y, Z).
        label: (X, Y, Z) or None.
        rng: random generator.
        flip: flip along one random spatial axis.
        rot90: rotate by a random multiple of 90 degrees in (x, y).

    Returns:
        ``(image, label)`` as contiguous arrays.
    """
    if rot90:
        k = int(rng.integers(0, 4))
        if image.shape[1] == image.shape[2] and k:
            image = np.rot90(image, k, axes=(1, 2))
            label = None if label is None else np.rot90(label, k, axes=(0, 1))
    if flip:
        axis = int(rng.integers(0, 3))
        image = np.flip(image, axis=axis + 1)
        label = None if label is None else np.flip(label, axis=axis)
    image = np.ascontiguousarray(image)
    label = None if label is None else np.ascontiguousarray(label)
    return image, label


def random_intensity_augment(image: np.ndarray, rng: np.random.Generator, prob: float,
                             brightness: tuple[float, float] = (0.7, 1.3),
                             gamma: tuple[float, float] = (0.7, 1.5),
                             noise: float = 0.1) -> np.ndarray:
    """Per-modality random brightness, gamma and noise on the non-zero voxels of a crop.

    Each channel is transformed with probability ``prob``, independently: over its non-zero
    voxels ``x`` (range ``[lo, hi]``), ``lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g``
    with ``log g`` uniform in ``log(gamma)``, times ``s`` uniform in ``brightness``, plus
    Gaussian noise of standard deviation ``u * noise * std(x)``, ``u`` uniform in [0, 1].
    Zero voxels (background, padding, a modality zeroed by modality dropout) stay zero, so
    the scheme works on min-max and z-scored caches alike. The draw comes from the crop's
    own numpy generator, so a batch stays a pure function of ``(seed, iteration)``.

    Args:
        image: ``(C, X, Y, Z)`` float32 crop (modified copy returned).
        rng: the crop's generator.
        prob: probability in [0, 1] that a channel is transformed.
        brightness: range of the multiplicative factor.
        gamma: range of the gamma exponent (drawn log-uniform).
        noise: largest noise standard deviation as a fraction of the channel's std.

    Returns:
        The augmented crop (a new array; ``image`` when nothing was drawn).
    """
    out = image
    for c in range(image.shape[0]):
        if rng.random() >= prob:
            continue
        g = float(np.exp(rng.uniform(np.log(gamma[0]), np.log(gamma[1]))))
        s = float(rng.uniform(*brightness))
        u = float(rng.uniform(0.0, 1.0))
        mask = image[c] != 0
        x = image[c][mask]
        if x.size < 2:
            continue
        lo, hi = float(x.min()), float(x.max())
        if hi - lo > 1e-6:
            x = lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g
        x = x * s + rng.normal(0.0, u * noise * float(x.std()) + 1e-12, x.shape)
        if out is image:
            out = image.copy()
        out[c][mask] = x.astype(image.dtype)
    return out


def random_contrast_inversion(image: np.ndarray, rng: np.random.Generator,
                              probs: dict[int, float], centres: Sequence[float]) -> np.ndarray:
    """Mirror some channels' non-zero voxels about their case's mean: ``2 * centre - x``.

    A modality on which the target is bright in some cases and dark in others (the tumour
    core on T1ce: an enhancing rim or necrosis) teaches a network the sign of the labelled
    cases' contrast; inverted crops make that sign uninformative, so the network has to
    learn the contrast itself. Zero voxels (background, padding) stay zero.

    Args:
        image: ``(C, X, Y, Z)`` float32 crop (modified copy returned).
        rng: the crop's generator (one draw per channel of ``probs``, in channel order).
        probs: channel index -> probability in [0, 1] that the channel is inverted.
        centres: per channel, the mean of the case's non-zero voxels.

    Returns:
        The crop (a new array; ``image`` when nothing was inverted).
    """
    out = image
    for c in sorted(probs):
        if rng.random() >= probs[c]:
            continue
        if out is image:
            out = image.copy()
        mask = out[c] != 0
        out[c][mask] = (2.0 * float(centres[c]) - out[c][mask]).astype(image.dtype)
    return out


def _rotation(angles: np.ndarray) -> np.ndarray:
    """The 3 x 3 rotation by ``angles`` (radians) about the three axes in turn."""
    out = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        out = r @ out
    return out


def random_rotate_scale(rng: np.random.Generator, max_degrees: float = 30.0,
                        scale: tuple[float, float] = (0.7, 1.4)) -> np.ndarray:
    """A random rotation and isotropic zoom (nnU-Net's ranges) as a 3 x 3 matrix.

    Each axis' angle is uniform in ``[-max_degrees, max_degrees]`` and the zoom factor
    ``z`` uniform in ``scale`` (``z > 1`` enlarges the content).

    Returns:
        The matrix mapping an output offset from the crop centre to the input offset.
    """
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, size=3))
    return _rotation(angles) / float(rng.uniform(*scale))


def transformed_crop(image: np.ndarray, label: np.ndarray | None, crop_size: Sequence[int],
                     matrix: np.ndarray, rng: np.random.Generator,
                     foreground_prob: float = 0.0, fg_coords: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """A random crop seen through ``matrix`` (a rotation and zoom about its centre).

    The window read from the volume is the one the transformed crop covers (larger than
    the crop when zooming out or rotating), placed as :func:`random_crop` places a crop,
    so the crop's corners hold tissue rather than padding. Images are resampled
    linearly, the label by nearest neighbour. scipy's ``affine_transform`` rather than
    MONAI's ``RandAffine``: the draw comes from the crop's own numpy generator, so a batch
    stays a pure function of ``(seed, iteration)``.

    Args:
        image: ``(C, X, Y, Z)`` volume, possibly memory-mapped.
        label: ``(X, Y, Z)`` label or None.
        crop_size: the output crop's shape.
        matrix: from :func:`random_rotate_scale`.
        rng: the crop's generator (its position).
        foreground_prob: as in :func:`random_crop`.
        fg_coords: as in :func:`random_crop`.

    Returns:
        ``(image crop (C, *crop_size) float32, label crop uint8 or None)``.
    """
    crop = np.asarray([int(c) for c in crop_size])
    window = np.ceil(np.abs(matrix) @ (crop - 1)).astype(int) + 2
    img, lab = random_crop(image, label, window, rng, foreground_prob, fg_coords)
    offset = (window - 1) / 2.0 - matrix @ ((crop - 1) / 2.0)
    out = np.empty((img.shape[0], *crop), dtype=np.float32)
    for c in range(img.shape[0]):
        ndimage.affine_transform(img[c], matrix, offset, output=out[c], order=1,
                                 mode="constant", cval=0.0)
    if lab is not None:
        lab = ndimage.affine_transform(lab, matrix, offset, output_shape=tuple(crop),
                                       order=0, mode="constant", cval=0)
    return out, lab
