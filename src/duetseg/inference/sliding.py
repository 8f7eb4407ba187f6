"""Whole-volume prediction by sliding windows (MONAI ``sliding_window_inference``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference

__all__ = ["Predictor", "predict_volume"]

Predictor = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def _flip_dims(spatial_dims: int = 3) -> list[tuple[int, ...]]:
    return [(d,) for d in range(2, 2 + spatial_dims)]


@torch.no_grad()
def predict_volume(
    predictor: Predictor,
    image: np.ndarray,
    roi_size: Sequence[int],
    overlap: float = 0.5,
    blend: str = "gaussian",
    sw_batch_size: int = 2,
    device: torch.device | str = "cpu",
    tta_flip: bool = False,
) -> dict[str, np.ndarray]:
    """Predict class probabilities of every output for one volume.

    Args:
        predictor: maps a (B, C, X, Y, Z) tensor to named (B, classes, X, Y, Z) softmax
            probabilities (e.g. ``Method.output_probabilities``); called in eval mode.
        image: (C, X, Y, Z) float array (may be memory-mapped).
        roi_size: window size; volumes smaller than it are padded by MONAI.
        overlap: window overlap fraction.
        blend: "gaussian" or "constant" window weighting.
        sw_batch_size: windows per forward pass.
        device: where the network runs.
        tta_flip: also average over flips along each spatial axis.

    Returns:
        Output name -> (classes, X, Y, Z) float32 probabilities.
    """
    x = torch.from_numpy(np.array(image, dtype=np.float32))[None].to(device)

    def run(inp: torch.Tensor) -> dict[str, torch.Tensor]:
        return sliding_window_inference(
            inp, roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, predictor=predictor,
            overlap=overlap, mode=blend, sw_device=device, device=device,
        )

    out = run(x)
    if tta_flip:
        passes = 1
        for dims in _flip_dims():
            flipped = run(torch.flip(x, dims))
            for key in out:
                out[key] = out[key] + torch.flip(flipped[key], dims)
            passes += 1
        out = {k: v / passes for k, v in out.items()}
    return {k: v[0].float().cpu().numpy() for k, v in out.items()}
