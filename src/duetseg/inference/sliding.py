"""Whole-volume prediction: MONAI sliding windows, or one pass over the padded volume.

The settings of :func:`predict_volume` default to those of
:class:`~duetseg.config.InferenceConfig`, the one place they are spelled.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import get_args

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference

from duetseg.config import InferenceConfig
from duetseg.precision import autocast_context

__all__ = ["Predictor", "INPUT_MULTIPLE", "INFERENCE_MODES", "WHOLE_MAX_VOXELS",
           "resolve_mode", "predict_volume", "predict_with_config"]

Predictor = Callable[[torch.Tensor], dict[str, torch.Tensor]]

# Every network here downsamples four times by 2, so a whole-volume pass needs sizes that
# are multiples of 16 for the decoder's skip connections to line up.
INPUT_MULTIPLE = 16

_DEFAULTS = InferenceConfig()
INFERENCE_MODES: tuple[str, ...] = get_args(InferenceConfig.model_fields["mode"].annotation)
# ``InferenceConfig.whole_max_voxels``: the largest padded volume ``auto`` predicts in one pass
WHOLE_MAX_VOXELS = _DEFAULTS.whole_max_voxels


def resolve_mode(mode: str, spatial_shape: Sequence[int],
                 max_voxels: int = WHOLE_MAX_VOXELS) -> str:
    """``sliding`` or ``whole`` for a volume: ``auto`` picks whole when the padded volume fits.

    Args:
        mode: ``auto``, ``sliding`` or ``whole``.
        spatial_shape: the volume's (X, Y, Z).
        max_voxels: largest padded volume ``auto`` predicts in one pass.

    Returns:
        ``sliding`` or ``whole``.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in INFERENCE_MODES:
        raise ValueError(f"unknown inference mode {mode!r} ({' | '.join(INFERENCE_MODES)})")
    if mode != "auto":
        return mode
    padded = int(np.prod([n + (-n) % INPUT_MULTIPLE for n in spatial_shape]))
    return "whole" if padded <= max_voxels else "sliding"


def _flip_dims(spatial_dims: int = 3) -> list[tuple[int, ...]]:
    return [(d,) for d in range(2, 2 + spatial_dims)]


def _whole(predictor: Predictor, x: torch.Tensor, multiple: int) -> dict[str, torch.Tensor]:
    """One forward pass over ``x`` zero-padded (at the end of each axis) to ``multiple``."""
    size = x.shape[2:]
    pad = [(-n) % multiple for n in size]
    padded = F.pad(x, [p for axis in reversed(pad) for p in (0, axis)])
    out = predictor(padded)
    crop = (slice(None), slice(None), *(slice(0, n) for n in size))
    return {k: v[crop] for k, v in out.items()}


@torch.no_grad()
def predict_volume(
    predictor: Predictor,
    image: np.ndarray,
    roi_size: Sequence[int],
    overlap: float = _DEFAULTS.overlap,
    blend: str = _DEFAULTS.blend,
    sw_batch_size: int = _DEFAULTS.sw_batch_size,
    device: torch.device | str = "cpu",
    tta_flip: bool = _DEFAULTS.tta_flip,
    mode: str = _DEFAULTS.mode,
    amp: str = _DEFAULTS.amp,
    whole_max_voxels: int = WHOLE_MAX_VOXELS,
) -> dict[str, np.ndarray]:
    """Predict class probabilities of every output for one volume.

    Every setting defaults to the field of the same name of
    :class:`~duetseg.config.InferenceConfig`.

    Args:
        predictor: maps a (B, C, X, Y, Z) tensor to named (B, classes, X, Y, Z) softmax
            probabilities (e.g. ``Method.output_probabilities``); called in eval mode.
        image: (C, X, Y, Z) float array (may be memory-mapped).
        roi_size: window size; volumes smaller than it are padded by MONAI.
        overlap: window overlap fraction.
        blend: "gaussian" or "constant" window weighting.
        sw_batch_size: windows per forward pass (batched, all on ``device``).
        device: where the network runs.
        tta_flip: also average over flips along each spatial axis.
        mode: ``sliding`` (windows of ``roi_size``), ``whole`` (one pass over the volume
            padded to a multiple of 16; falls back to sliding when CUDA runs out of memory)
            or ``auto`` (whole up to ``whole_max_voxels`` padded voxels, else sliding).
        amp: ``none``, ``bf16`` or ``auto`` (bf16 autocast on CUDA, float32 on CPU).
        whole_max_voxels: see ``mode``.

    Returns:
        Output name -> (classes, X, Y, Z) float32 probabilities.

    Raises:
        ValueError: an unknown mode.
    """
    mode = resolve_mode(mode, image.shape[1:], whole_max_voxels)
    device = torch.device(device)
    x = torch.from_numpy(np.array(image, dtype=np.float32))[None].to(device)

    def sliding(inp: torch.Tensor) -> dict[str, torch.Tensor]:
        return sliding_window_inference(
            inp, roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, predictor=predictor,
            overlap=overlap, mode=blend, sw_device=device, device=device,
        )

    def run(inp: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast_context(device, amp):
            if mode == "sliding":
                return {k: v.float() for k, v in sliding(inp).items()}
            try:
                return {k: v.float() for k, v in _whole(predictor, inp, INPUT_MULTIPLE).items()}
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                warnings.warn("whole-volume inference ran out of GPU memory; using sliding "
                              "windows for this volume", stacklevel=3)
                return {k: v.float() for k, v in sliding(inp).items()}

    out = run(x)
    if tta_flip:
        passes = 1
        for dims in _flip_dims():
            flipped = run(torch.flip(x, dims))
            for key in out:
                out[key] = out[key] + torch.flip(flipped[key], dims)
            passes += 1
        out = {k: v / passes for k, v in out.items()}
    return {k: v[0].cpu().numpy() for k, v in out.items()}


def predict_with_config(predictor: Predictor, image: np.ndarray, roi_size: Sequence[int],
                        infer: InferenceConfig, device: torch.device | str,
                        tta_flip: bool | None = None) -> dict[str, np.ndarray]:
    """:func:`predict_volume` with the settings of an ``InferenceConfig``.

    Args:
        predictor: see :func:`predict_volume`.
        image: (C, X, Y, Z) array.
        roi_size: window size (the training crop unless the config sets one).
        infer: the run's ``InferenceConfig``.
        device: where the network runs.
        tta_flip: overrides ``infer.tta_flip`` when not None.

    Returns:
        Output name -> (classes, X, Y, Z) float32 probabilities.
    """
    return predict_volume(
        predictor, image, roi_size, overlap=infer.overlap, blend=infer.blend,
        sw_batch_size=infer.sw_batch_size, device=device,
        tta_flip=infer.tta_flip if tta_flip is None else tta_flip, mode=infer.mode,
        amp=infer.amp, whole_max_voxels=infer.whole_max_voxels,
    )
