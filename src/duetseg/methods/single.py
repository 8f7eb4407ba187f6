"""Base of single-network methods: one VNet reading the modalities as input channels.

The single-modality semi-supervised baselines (Mean Teacher, ICT, entropy minimisation, ...)
take the modalities concatenated as channels, as the paper does for its comparison.
"""

from __future__ import annotations

import torch
from torch import nn

from duetseg.methods.base import Method, MethodContext
from duetseg.methods.losses import SupervisedLoss
from duetseg.methods.networks import vnet_from_config

__all__ = ["SingleNetworkMethod", "build_vnet"]


def build_vnet(ctx: MethodContext) -> nn.Module:
    """The shared VNet backbone with ``K`` input channels."""
    return vnet_from_config(len(ctx.modalities), ctx.num_classes, ctx.model)


class SingleNetworkMethod(Method):
    """One network ``self.net`` on concatenated modalities; output ``prediction``.

    Subclasses implement ``training_losses`` (use ``self.supervised(logits, label)`` for the
    labelled part) and may add a teacher or extra heads.
    """

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.net = build_vnet(ctx)
        self.sup_loss = SupervisedLoss()
        self.primary_output = "prediction"

    def supervised(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """CE + Dice on the first ``label.shape[0]`` items of ``logits``."""
        return self.sup_loss(logits[: label.shape[0]], label)

    def output_probabilities(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"prediction": torch.softmax(self.net(image), 1)}

    def describe_outputs(self) -> dict[str, str]:
        return {"prediction": f"one network on {' + '.join(self.ctx.modalities)} as channels"}
