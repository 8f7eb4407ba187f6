"""Post-processing of predicted label maps: keep the largest connected component.

Uses ``scipy.ndimage.label`` rather than MONAI's ``KeepLargestConnectedComponent``: the
masks here are plain integer numpy arrays in the output grid, and scipy labels them without
a round trip through tensors and one-hot channels, with the connectivity stated explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

__all__ = ["keep_largest_component"]


def _largest(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest connected component of ``mask`` (ties: lowest label)."""
    labels, n = ndimage.label(mask, structure=structure)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def keep_largest_component(mask: np.ndarray, classes: Iterable[int] | None = None,
                           connectivity: int = 3, independent: bool = True) -> np.ndarray:
    """Set every voxel outside the largest connected component of its class to background.

    Args:
        mask: (X, Y, Z) integer label map, 0 = background.
        classes: foreground classes to process; default every non-zero value present.
            Other classes are left unchanged.
        connectivity: 1 (faces, 6-neighbourhood), 2 (edges, 18) or 3 (corners, 26).
        independent: True: each class keeps its own largest component. False: the union
            of ``classes`` is one object; voxels outside its largest component become 0
            (a class touching another class's component is kept).

    Returns:
        A new label map of the same shape and dtype.

    Raises:
        ValueError: ``mask`` is not 3D or ``connectivity`` is not 1, 2 or 3.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"expected a 3D label map, got shape {mask.shape}")
    if connectivity not in (1, 2, 3):
        raise ValueError(f"connectivity must be 1, 2 or 3, got {connectivity}")
    structure = ndimage.generate_binary_structure(3, connectivity)
    todo = ([int(c) for c in np.unique(mask) if c != 0] if classes is None
            else [int(c) for c in classes if c != 0])
    out = mask.copy()
    if not independent:
        region = np.isin(mask, todo)
        out[region & ~_largest(region, structure)] = 0
        return out
    for cls in todo:
        region = mask == cls
        out[region & ~_largest(region, structure)] = 0
    return out
