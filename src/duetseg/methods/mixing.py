"""Cuboid masks and pasting between crops (copy-paste / CutMix augmentation).

Used by ``bcp``: labelled and unlabelled crops pasted into each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["cuboid_mask", "paste", "cutmix_with_neighbour"]


def cuboid_mask(n: int, shape: Sequence[int], ratio: float,
                device: torch.device | str | None = None) -> torch.Tensor:
    """``n`` boolean masks, each True inside one axis-aligned cuboid.

    Args:
        n: number of masks.
        shape: spatial shape of a crop, e.g. ``(X, Y, Z)``.
        ratio: cuboid side / crop side along each axis, in (0, 1].
        device: where the masks are made (the positions are drawn on the CPU generator).

    Returns:
        ``(n, *shape)`` bool; cuboid sides ``max(1, floor(ratio x side))``, start positions
        uniform over the valid ones, independent per mask and axis.
    """
    sizes = [max(1, math.floor(ratio * s + 1e-6)) for s in shape]
    starts = [torch.randint(0, s - k + 1, (n,)) for s, k in zip(shape, sizes)]
    mask = torch.ones((n, *shape), dtype=torch.bool, device=device)
    for axis, (s, k, start) in enumerate(zip(shape, sizes, starts)):
        coord = torch.arange(s, device=device)
        start = start.to(device).unsqueeze(1)
        view = [n] + [1] * len(shape)
        view[axis + 1] = s
        mask = mask & ((coord >= start) & (coord < start + k)).view(view)
    return mask


def paste(inside: torch.Tensor, outside: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``inside ⊙ M + outside ⊙ (1 − M)`` for a boolean ``(n, *spatial)`` mask.

    Works for images ``(n, K, *spatial)`` (the mask is broadcast over channels) and for
    label maps ``(n, *spatial)`` (dtype kept).
    """
    m = mask.unsqueeze(1) if inside.dim() == mask.dim() + 1 else mask
    return torch.where(m, inside, outside)


def cutmix_with_neighbour(tensors: Sequence[torch.Tensor], mask: torch.Tensor
                          ) -> list[torch.Tensor]:
    """Crop ``i``'s cuboid pasted into crop ``i + 1 (mod n)``, the same way in every tensor.

    Mixed crop ``i`` is crop ``i`` inside its mask's cuboid and crop ``i + 1`` outside it.

    Args:
        tensors: tensors ``(n, ...)`` whose first dimension indexes the same ``n`` crops
            (images, logits or label maps); with ``n = 1`` a crop is mixed with itself
            (unchanged).
        mask: ``(n, *spatial)`` bool cuboid masks (:func:`cuboid_mask`).

    Returns:
        The mixed tensors, in order.
    """
    return [paste(t, torch.roll(t, -1, 0), mask) for t in tensors]
