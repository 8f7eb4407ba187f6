"""The one place where a :class:`~duetseg.config.ModelConfig` becomes network arguments.

The networks in :mod:`duetseg.models` are plain ``torch.nn.Module`` classes with plain
arguments and know nothing of the config; methods build them from the run's config through
these functions, so a new model setting is read here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from duetseg.config import ModelConfig
from duetseg.errors import ConfigError
from duetseg.models.cmcnet import CMCNet
from duetseg.models.duetnet import DuetNet
from duetseg.models.vnet import VNet

__all__ = ["backbone_args", "cmcnet_from_config", "duetnet_from_config", "vnet_from_config"]


def backbone_args(cfg: ModelConfig) -> dict[str, Any]:
    """Keyword arguments every VNet-based network takes: ``base_width``, ``dropout``, ``norm``.

    Args:
        cfg: model settings.

    Returns:
        ``{"base_width": ..., "dropout": ..., "norm": ...}``.
    """
    return {"base_width": cfg.base_width, "dropout": cfg.dropout, "norm": cfg.norm}


def duetnet_from_config(in_modalities: int, num_classes: int, cfg: ModelConfig) -> DuetNet:
    """DuetNet with every setting of ``cfg`` (backbone, MMF, MAE, branches and their input).

    Args:
        in_modalities: number of modalities (input channels); one branch each unless
            ``cfg.branches`` sets the count.
        num_classes: output classes per branch.
        cfg: model settings.

    Returns:
        The network (weights initialised).

    Raises:
        ConfigError: ``cfg.branches`` differs from ``in_modalities`` while
            ``cfg.branch_input`` is ``own``.
        ValueError: fewer than 2 branches.
    """
    if cfg.branches is not None and cfg.branches != in_modalities and cfg.branch_input == "own":
        raise ConfigError(
            f"model.branches={cfg.branches} differs from the number of modalities "
            f"({in_modalities}), but model.branch_input=own gives each modality its own "
            f"branch: set model.branch_input=all (every branch reads every modality) or "
            f"leave model.branches unset (one branch per modality)")
    return DuetNet(
        in_modalities,
        num_classes,
        **backbone_args(cfg),
        fusion=cfg.fusion,
        mae=cfg.mae,
        mae_softmax=cfg.mae_softmax,
        mae_on_skips=cfg.mae_on_skips,
        mae_reduction=cfg.mae_reduction,
        branch_input=cfg.branch_input,
        branches=cfg.branches,
    )


def cmcnet_from_config(
    in_modalities: int, num_classes: int, cfg: ModelConfig, se_reduction: int = 4
) -> CMCNet:
    """CMCNet with the backbone settings of ``cfg`` (its fusion and MAE settings are unused).

    Args:
        in_modalities: number of modalities K (≥ 2).
        num_classes: output classes.
        cfg: model settings.
        se_reduction: reduction ratio of the channel attention (a ``cmc`` method option).

    Returns:
        The network (weights initialised).

    Raises:
        ValueError: ``in_modalities < 2``.
    """
    return CMCNet(in_modalities, num_classes, **backbone_args(cfg), se_reduction=se_reduction)


def vnet_from_config(in_channels: int, num_classes: int, cfg: ModelConfig) -> VNet:
    """Single VNet with the backbone settings of ``cfg``.

    Args:
        in_channels: input channels (the modalities concatenated).
        num_classes: output classes.
        cfg: model settings.

    Returns:
        The network (weights initialised).
    """
    return VNet(in_channels, num_classes, **backbone_args(cfg))
