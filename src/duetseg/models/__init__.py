"""Networks: VNet backbone pieces, MMF fusion, MAE enhancement, DuetNet and a model registry.

``build_model(kind, in_channels, num_classes, cfg)`` looks ``kind`` up in ``MODEL_REGISTRY``;
other packages add their own networks with ``@register_model("name")`` instead of growing
if-chains.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from duetseg.config import ModelConfig
from duetseg.models.blocks import init_weights, make_norm
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
    "CrossModalEnhancement",
    "Decoder",
    "DuetNet",
    "Encoder",
    "MODEL_REGISTRY",
    "ModelBuilder",
    "MultiModalFusion",
    "PerBranchEnhancement",
    "SelectiveKernelEnhancement",
    "VNet",
    "build_enhancement",
    "build_fusion",
    "build_model",
    "count_parameters",
    "ensemble_probabilities",
    "init_weights",
    "make_norm",
    "register_model",
]

ModelBuilder = Callable[[int, int, ModelConfig], nn.Module]
MODEL_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering ``builder(in_channels, num_classes, cfg) -> nn.Module``.

    Args:
        name: the ``kind`` accepted by :func:`build_model`.

    Returns:
        The decorator (it returns the builder unchanged).

    Raises:
        ValueError: ``name`` is already registered.
    """

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in MODEL_REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        MODEL_REGISTRY[name] = builder
        return builder

    return decorator


@register_model("duetnet")
def _build_duetnet(in_channels: int, num_classes: int, cfg: ModelConfig) -> nn.Module:
    return DuetNet(in_channels, num_classes, cfg)


@register_model("vnet")
def _build_vnet(in_channels: int, num_classes: int, cfg: ModelConfig) -> nn.Module:
    return VNet(in_channels, num_classes, cfg.base_width, cfg.dropout, cfg.norm)


def build_model(
    kind: str, in_channels: int, num_classes: int, cfg: ModelConfig | None = None
) -> nn.Module:
    """Build a registered network.

    Args:
        kind: registry name (``"duetnet"``, ``"vnet"``, or one added by ``register_model``).
        in_channels: input channels (= modalities; DuetNet makes one branch per channel).
        num_classes: output classes.
        cfg: model settings; None = defaults.

    Returns:
        The network (weights initialised).

    Raises:
        ValueError: unknown ``kind`` or invalid sizes.
    """
    try:
        builder = MODEL_REGISTRY[kind]
    except KeyError:
        raise ValueError(f"unknown model {kind!r}; registered: {sorted(MODEL_REGISTRY)}") from None
    return builder(in_channels, num_classes, cfg if cfg is not None else ModelConfig())


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
