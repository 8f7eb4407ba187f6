"""Networks: VNet backbone pieces, MMF fusion, MAE enhancement, DuetNet.

The networks are plain ``torch.nn.Module`` classes taking plain arguments; this package does
not read the config. The methods build them from a run's model settings with
:mod:`duetseg.methods.networks` (``duetnet_from_config``, ...).
"""

from __future__ import annotations

from torch import nn

from duetseg.models.blocks import init_weights, make_norm
from duetseg.models.cmcnet import CMCNet
from duetseg.models.duetnet import DuetNet, ensemble_probabilities
from duetseg.models.enhancement import (
    CrossModalEnhancement,
    PerBranchEnhancement,
    SelectiveKernelEnhancement,
    build_enhancement,
)
from duetseg.models.fusion import MultiModalFusion, build_fusion
from duetseg.models.vnet import Decoder, Encoder, VNet

__all__ = [
    "CMCNet",
    "CrossModalEnhancement",
    "Decoder",
    "DuetNet",
    "Encoder",
    "MultiModalFusion",
    "PerBranchEnhancement",
    "SelectiveKernelEnhancement",
    "VNet",
    "build_enhancement",
    "build_fusion",
    "count_parameters",
    "ensemble_probabilities",
    "init_weights",
    "make_norm",
]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
