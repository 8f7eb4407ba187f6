"""Random intensity perturbation of a batch of crops (a "strong view" for consistency).

Used by ``ours`` with ``method.options.intensity_view``: the branches' predictions on the
clean unlabelled crops are the targets for their outputs on the perturbed ones, so each
branch must keep its segmentation when a modality's contrast, brightness or noise change
(weak-to-strong consistency as in FixMatch, here per modality).

Written on torch tensors rather than with MONAI's random intensity transforms because those
draw from their own numpy generators, which a checkpoint does not save: drawing from torch's
global generator keeps an interrupted run's resume exact, and the whole batch is perturbed
at once on the training device.
"""

from __future__ import annotations

import math

import torch

__all__ = ["random_intensity"]

_EPS = 1e-6


def _uniform(shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape)


def random_intensity(image: torch.Tensor, gamma: tuple[float, float] = (0.5, 2.0),
                     brightness: tuple[float, float] = (0.75, 1.25),
                     noise: float = 0.1) -> torch.Tensor:
    """Independent random gamma, brightness and Gaussian noise per crop and modality.

    For each crop ``b`` and channel ``c`` (``x`` the crop's non-zero values, range ``[lo, hi]``):
    ``y = lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g`` with ``log g`` uniform in
    ``log(gamma)``, then ``y * s`` with ``s`` uniform in ``brightness``, then
    ``+ N(0, (u * noise * std(x))^2)`` with ``u`` uniform in [0, 1]. Zero voxels (background,
    padding) stay zero, so the view suits min-max and z-scored caches alike; a constant
    channel (e.g. a modality zeroed by modality dropout) is returned unchanged.

    Args:
        image: ``(B, C, *spatial)`` float crops.
        gamma: range of the gamma exponent (drawn log-uniform).
        brightness: range of the multiplicative factor.
        noise: largest noise standard deviation, as a fraction of the channel's std.

    Returns:
        A new tensor of the same shape and dtype.

    Raises:
        ValueError: ``image`` has fewer than 3 dimensions or a range is empty or not positive.
    """
    if image.dim() < 3:
        raise ValueError(f"image must be (B, C, *spatial), got shape {tuple(image.shape)}")
    if not 0 < gamma[0] <= gamma[1] or not 0 < brightness[0] <= brightness[1] or noise < 0:
        raise ValueError(f"invalid ranges: gamma {gamma}, brightness {brightness}, "
                         f"noise {noise}")
    b, c = image.shape[:2]
    shape = (b, c) + (1,) * (image.dim() - 2)
    flat = image.float().flatten(2)
    # Statistics over the non-zero voxels only: on a z-scored crop the zero background lies
    # inside [lo, hi], and perturbing it would paint a texture no test image has.
    inside = flat != 0
    count = inside.sum(2).view(shape)
    lo = torch.where(inside, flat, math.inf).amin(2).view(shape)
    hi = torch.where(inside, flat, -math.inf).amax(2).view(shape)
    mean = (flat * inside).sum(2).view(shape) / count.clamp_min(1)
    centred = (flat - mean.flatten(2)) * inside
    std = (centred.pow(2).sum(2).view(shape) / (count - 1).clamp_min(1)).sqrt()
    g = torch.exp(_uniform(shape, math.log(gamma[0]), math.log(gamma[1]))).to(image.device)
    s = _uniform(shape, *brightness).to(image.device)
    sigma = (torch.rand(shape) * noise).to(image.device) * std
    eps = torch.randn(image.shape).to(image.device)
    span = hi - lo  # -inf on an all-zero channel, whose voxels are all kept below
    flat_channel = span <= _EPS
    unit = ((image.float() - lo) / span.clamp_min(_EPS)).clamp(0, 1)
    out = (lo + span * unit ** g) * s + sigma * eps
    keep = flat_channel | (image == 0)
    return torch.where(keep, image.float(), out).to(image.dtype)
