"""``entropy_min``: entropy minimisation (Grandvalet and Bengio, 2005) on one VNet.

One VNet reads the modalities as input channels; CE + Dice on the labelled crops, plus the
mean normalised entropy of the softmax ``p`` over ``C`` classes::

    H(x)     = -sum_c p_c(x) log p_c(x) / log C          in [0, 1] per voxel
    L_unsup  = mean of H over crops and voxels
    L        = L_sup + w(t) L_unsup                      w = 0.1 x exp(-5 (1 - t)^2) ramp

Interpretation choice: which crops enter the mean is ``method.options.on``. The default
``"all"`` averages over the whole batch, labelled crops included, as the SSL4MIS code whose
numbers the paper reports; ``"unlabeled"`` uses only the unlabelled crops (the textbook
semi-supervised form). ``log p`` comes from ``log_softmax`` for numerical stability.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from duetseg.config import StrictModel
from duetseg.methods.single import SingleNetworkMethod

__all__ = ["EntropyMinimization", "normalized_entropy"]


def normalized_entropy(probs: torch.Tensor, log_probs: torch.Tensor | None = None,
                       eps: float = 1e-8) -> torch.Tensor:
    """Voxel-wise entropy over the class axis divided by ``log C``.

    Args:
        probs: (B, C, ...) probabilities summing to 1 over axis 1 (C >= 2).
        log_probs: their logarithm (e.g. from ``log_softmax``); if None, ``log(max(p, eps))``.
        eps: floor for the logarithm when ``log_probs`` is None.

    Returns:
        (B, ...) entropies in [0, 1].

    Raises:
        ValueError: fewer than two classes.
    """
    c = probs.shape[1]
    if c < 2:
        raise ValueError(f"normalised entropy needs at least 2 classes, got {c}")
    if log_probs is None:
        log_probs = torch.log(probs.clamp_min(eps))
    return -(probs * log_probs).sum(1) / math.log(c)


class EntropyMinimization(SingleNetworkMethod):
    """Supervised CE + Dice plus the mean normalised entropy of the prediction."""

    name = "entropy_min"
    table_order = 3
    description = "entropy minimisation: mean normalised softmax entropy (one VNet)"
    default_weight = 0.1
    default_rampup_fraction = 0.5

    class Options(StrictModel):
        """Entropy minimisation options.

        Attributes:
            on: crops the entropy is averaged over: ``"all"`` (SSL4MIS) or ``"unlabeled"``.
        """

        on: Literal["all", "unlabeled"] = "all"

    def training_losses(self, image, label, iteration):
        n = label.shape[0]
        logits = self.net(image)
        sup = self.supervised(logits, label)
        losses = {"sup": sup}
        selected = logits if self.options.on == "all" else logits[n:]
        if selected.shape[0] == 0:
            losses["loss"] = sup
            return losses
        unsup = normalized_entropy(torch.softmax(selected, 1),
                                   torch.log_softmax(selected, 1)).mean()
        losses["loss"] = self.add_unsupervised(losses, sup, unsup, iteration)
        return losses
