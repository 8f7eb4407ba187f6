"""``supervised``: labelled crops only (lower bound; the upper bound with ``--labeled 100%``).

By default the same DuetNet as ``ours`` without any unsupervised term. With
``method.options.network: vnet`` a single VNet reads the modalities concatenated as input
channels (the single-network bound used by the single-modality baselines).

Modality dropout: with DuetNet a branch gets no loss on the crops where its input was
zeroed (as in ``ours``); the VNet just sees the zeroed channel.
"""

from __future__ import annotations

from typing import Literal

import torch

from duetseg.config import Config, ModelConfig, StrictModel
from duetseg.methods.base import Method, OutputSpec
from duetseg.methods.dual_branch import DualBranchMethod, duetnet_switches
from duetseg.methods.losses import SupervisedLoss
from duetseg.methods.single import build_vnet

__all__ = ["Supervised"]


class Supervised(DualBranchMethod):
    """Supervised CE + Dice on labelled crops; unlabelled data unused."""

    name = "supervised"
    description = "labelled crops only, same network (bounds: labelled-only / 100 % labels)"
    role = "bound"
    table_order = 0
    ablation_switches = ("mmf", "mae")

    class Options(StrictModel):
        network: Literal["duetnet", "vnet"] = "duetnet"

    @classmethod
    def ablation_flags(cls, config: Config) -> dict[str, bool]:
        """MMF and MAE from the model settings (there is no unsupervised term to drop)."""
        return duetnet_switches(config)

    @classmethod
    def minimum_modalities(cls, options: StrictModel, model: ModelConfig | None = None) -> int:
        """One modality for the VNet, else as DuetNet needs."""
        return 1 if options.network == "vnet" else super().minimum_modalities(options, model)

    def __init__(self, ctx):
        if self.parse_options(ctx.method.options).network == "vnet":
            # skip DualBranchMethod's DuetNet: one VNet reads the modalities as channels
            super(DualBranchMethod, self).__init__(ctx)
            self.net = build_vnet(ctx)
            self.primary_output = "prediction"
        else:
            super().__init__(ctx)
        self.uses_unlabeled = False
        self.sup_loss = SupervisedLoss()

    def _logits(self, image: torch.Tensor) -> list[torch.Tensor]:
        out = self.net(image)
        return out if isinstance(out, list) else [out]

    def training_losses(self, image, label, iteration):
        present = self.present_mask() if self.options.network == "duetnet" else None
        sup = self.supervised(self._logits(image), label, present)
        return {"sup": sup, "loss": sup}

    def output_probabilities(self, image):
        if self.options.network == "vnet":
            return {"prediction": torch.softmax(self.net(image), 1)}
        return super().output_probabilities(image)

    def describe_outputs(self):
        if self.options.network == "vnet":
            return {"prediction": "single VNet on concatenated modalities"}
        return super().describe_outputs()

    def outputs(self) -> list[OutputSpec]:
        """The branches and ensemble of DuetNet, or the VNet's single ``prediction``."""
        if self.options.network == "vnet":
            return Method.outputs(self)
        return super().outputs()
