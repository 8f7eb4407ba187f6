"""Periodic validation: sliding-window Dice on the val split, in cache geometry."""

from __future__ import annotations

import numpy as np
import torch

from duetseg.config import InferenceConfig
from duetseg.evaluation.metrics import dice
from duetseg.inference import predict_with_config

__all__ = ["validate"]


def validate(method, cache, cases: list[str], roi_size, infer: InferenceConfig,
             device: torch.device) -> dict[str, float]:
    """Mean foreground Dice (%) of every output over ``cases``.

    Args:
        method: a ``Method`` (put in eval mode here and back to train mode after).
        cache: the ``Cache`` to read cases from.
        cases: labelled case IDs.
        roi_size: sliding-window size.
        infer: overlap / blending settings.
        device: device of the network.

    Returns:
        ``{"val_dice/<output>": mean Dice}`` (empty if no cases).
    """
    if not cases:
        return {}
    was_training = method.training
    method.eval()
    scores: dict[str, list[float]] = {}
    try:
        for case in cases:
            probs = predict_with_config(method.output_probabilities, cache.load_image(case),
                                        roi_size, infer, device, tta_flip=False)
            ref = np.asarray(cache.load_label(case))
            for name, p in probs.items():
                pred = p.argmax(0)
                fg = [dice(pred == c, ref == c) for c in range(1, p.shape[0])]
                scores.setdefault(name, []).append(float(np.mean(fg)))
    finally:
        method.train(was_training)
    return {f"val_dice/{k}": float(np.mean(v)) for k, v in scores.items()}
