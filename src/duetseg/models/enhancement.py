"""Modality-aware enhancement (MAE, paper Eq. 2).

Each branch feature ``F`` goes through two transforms with different receptive fields,
``ψ1`` (3×3×3 conv, norm, ReLU) and ``ψ2`` (3×3×3 conv with dilation 2, i.e. a 5×5×5 field,
norm, ReLU); ``U = ψ1(F) + ψ2(F)``, ``s = GAP(U)``, ``z = ReLU(FC(s))`` with
``C → max(C // reduction, 8)`` units, then a softmax produces channel weights. Eq. 2 does not
say across *what* the softmax runs, so two readings are implemented:

- ``"kernels"`` (selective-kernel reading, :class:`SelectiveKernelEnhancement`): per branch,
  two heads ``z → C``; softmax across the two kernels per channel
  (``a1 + a2 = 1``); output ``a1 ⊙ ψ1(F) + a2 ⊙ ψ2(F)``. Branches stay independent.
- ``"modalities"`` (cross-modal reading, :class:`CrossModalEnhancement`): one module sees
  all K branches; per branch ``U_m`` and ``s_m`` from its own ψ1/ψ2; ``z`` from the
  concatenation of all ``s_m``; K heads ``z → C``; softmax across the K modalities per
  channel (``Σ_m w_m = 1``); output ``F_m' = K · w_m ⊙ F_m``. This follows the paper's
  wording that the weights *weigh the fused features*; the factor K makes equal weights the
  identity, so the module only redistributes emphasis between modalities channel by channel
  and keeps the feature scale.

Every module keeps its most recent softmax weights in ``last_weights`` (detached), shape
``(B, n_choices, C)`` with the softmax along dim 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from duetseg.models.blocks import ConvNormAct

__all__ = [
    "MIN_HIDDEN",
    "hidden_size",
    "SelectiveKernelEnhancement",
    "PerBranchEnhancement",
    "CrossModalEnhancement",
    "NoEnhancement",
    "ENHANCEMENTS",
    "build_enhancement",
]

MIN_HIDDEN = 8


def hidden_size(channels: int, reduction: int) -> int:
    """Units of the bottleneck FC: ``max(channels // reduction, MIN_HIDDEN)``."""
    return max(channels // reduction, MIN_HIDDEN)


class _TwoFields(nn.Module):
    """ψ1 (3×3×3) and ψ2 (3×3×3, dilation 2), each with norm and ReLU."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.psi1 = ConvNormAct(channels, channels, 3, norm, dilation=1)
        self.psi2 = ConvNormAct(channels, channels, 3, norm, dilation=2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.psi1(x), self.psi2(x)


def _gap(x: Tensor) -> Tensor:
    return x.mean(dim=(2, 3, 4))


def _expand(weights: Tensor) -> Tensor:
    """(B, C) → (B, C, 1, 1, 1) for broadcasting over space."""
    return weights[:, :, None, None, None]


class SelectiveKernelEnhancement(nn.Module):
    """MAE on one branch, softmax across the two kernels (``mae_softmax: kernels``).

    Args:
        channels: feature channels ``C``.
        reduction: FC reduction ratio.
        norm: normalisation name.
    """

    def __init__(self, channels: int, reduction: int = 4, norm: str = "batch") -> None:
        super().__init__()
        self.channels = channels
        self.fields = _TwoFields(channels, norm)
        hidden = hidden_size(channels, reduction)
        self.squeeze = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True))
        self.heads = nn.Linear(hidden, 2 * channels)  # the two per-kernel heads, side by side
        self.last_weights: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        """Enhance ``x`` ``(B, C, X, Y, Z)``; returns the same shape."""
        u1, u2 = self.fields(x)
        z = self.squeeze(_gap(u1 + u2))
        weights = torch.softmax(self.heads(z).view(-1, 2, self.channels), dim=1)
        self.last_weights = weights.detach()
        return _expand(weights[:, 0]) * u1 + _expand(weights[:, 1]) * u2


class PerBranchEnhancement(nn.Module):
    """One :class:`SelectiveKernelEnhancement` per branch, applied independently.

    Args:
        channels: feature channels.
        num_modalities: number of branches K.
        reduction: FC reduction ratio.
        norm: normalisation name.
    """

    def __init__(
        self, channels: int, num_modalities: int, reduction: int = 4, norm: str = "batch"
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            SelectiveKernelEnhancement(channels, reduction, norm) for _ in range(num_modalities)
        )

    @property
    def last_weights(self) -> list[Tensor | None]:
        """Each branch's most recent kernel weights ``(B, 2, C)``."""
        return [b.last_weights for b in self.branches]

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Enhance each branch feature with its own module."""
        if len(features) != len(self.branches):
            raise ValueError(f"expected {len(self.branches)} branch features, got {len(features)}")
        return [m(f) for m, f in zip(self.branches, features, strict=True)]


class CrossModalEnhancement(nn.Module):
    """MAE over all branches, softmax across modalities (``mae_softmax: modalities``).

    Output ``F_m' = K · w_m ⊙ F_m`` with ``Σ_m w_m = 1`` per sample and channel.

    Args:
        channels: feature channels ``C`` of each branch.
        num_modalities: number of branches K (≥ 2).
        reduction: FC reduction ratio (on ``C``, the per-branch width).
        norm: normalisation name.

    Raises:
        ValueError: ``K < 2``.
    """

    def __init__(
        self, channels: int, num_modalities: int, reduction: int = 4, norm: str = "batch"
    ) -> None:
        super().__init__()
        if num_modalities < 2:
            raise ValueError(f"cross-modal MAE needs at least 2 modalities, got {num_modalities}")
        self.channels = channels
        self.num_modalities = num_modalities
        self.fields = nn.ModuleList(_TwoFields(channels, norm) for _ in range(num_modalities))
        hidden = hidden_size(channels, reduction)
        self.squeeze = nn.Sequential(
            nn.Linear(num_modalities * channels, hidden), nn.ReLU(inplace=True)
        )
        self.heads = nn.Linear(hidden, num_modalities * channels)  # K heads side by side
        self.last_weights: Tensor | None = None

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Re-weigh the K branch features ``(B, C, X, Y, Z)``; returns K tensors, same shapes."""
        if len(features) != self.num_modalities:
            raise ValueError(f"expected {self.num_modalities} branch features, got {len(features)}")
        pooled = []
        for fields, f in zip(self.fields, features, strict=True):
            u1, u2 = fields(f)
            pooled.append(_gap(u1 + u2))
        z = self.squeeze(torch.cat(pooled, dim=1))
        logits = self.heads(z).view(-1, self.num_modalities, self.channels)
        weights = torch.softmax(logits, dim=1)
        self.last_weights = weights.detach()
        k = float(self.num_modalities)
        return [k * _expand(weights[:, m]) * f for m, f in enumerate(features)]


class NoEnhancement(nn.Module):
    """Identity on the list of branch features (``mae: false``)."""

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return ``features`` as a new list."""
        return list(features)


ENHANCEMENTS: dict[str, type[nn.Module]] = {
    "kernels": PerBranchEnhancement,
    "modalities": CrossModalEnhancement,
}


def build_enhancement(
    enabled: bool,
    reading: str,
    channels: int,
    num_modalities: int,
    reduction: int = 4,
    norm: str = "batch",
) -> nn.Module:
    """MAE module mapping a list of K branch features to K enhanced features.

    Args:
        enabled: False gives :class:`NoEnhancement`.
        reading: ``"kernels"`` or ``"modalities"`` (see the module docstring).
        channels: feature channels of each branch.
        num_modalities: number of branches.
        reduction: FC reduction ratio.
        norm: normalisation name.

    Returns:
        The module.

    Raises:
        ValueError: unknown reading.
    """
    if not enabled:
        return NoEnhancement()
    try:
        cls = ENHANCEMENTS[reading]
    except KeyError:
        raise ValueError(
            f"unknown mae_softmax {reading!r}; expected one of {sorted(ENHANCEMENTS)}"
        ) from None
    return cls(channels, num_modalities, reduction, norm)
