"""Multi-stage multi-modal fusion (MMF, paper Eq. 3).

After encoder stage ``s`` the K branches' features are concatenated and turned into one
gate ``g_s = sigmoid(conv2(ReLU(norm(conv1(cat(f_s^1, ..., f_s^K))))))`` (conv1: K·C → C,
conv2: C → C, both 3×3×3). The gate goes back into every branch according to the mode:

- ``"gate_residual"`` (default): ``f ← f + f ⊙ g``
- ``"gate"``: ``f ← f ⊙ g``
- ``"add"``: ``f ← f + g``
- ``"none"``: no fusion, the branches stay independent.

The fused tensor feeds both the next stage of that branch and that branch's skip.

Absent modality (modality dropout, prediction without one of the inputs): the gate is
computed from all K branch features as usual, the absent branch's features being those of
a zero image; nothing is masked here. Training with ``train.modality_dropout`` teaches the
gate to cope with such a branch, and prediction on a zero-filled input then matches training.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from duetseg.models.blocks import ConvNormAct

__all__ = ["FUSION_COMBINE", "FUSION_MODES", "MultiModalFusion", "NoFusion", "build_fusion"]

FUSION_COMBINE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "gate_residual": lambda f, g: f + f * g,
    "gate": lambda f, g: f * g,
    "add": lambda f, g: f + g,
}
FUSION_MODES: tuple[str, ...] = ("none", *FUSION_COMBINE)


class NoFusion(nn.Module):
    """Pass-through: returns the branch features unchanged (``fusion: none``)."""

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return ``features`` as a new list.

        Args:
            features: one tensor per branch.

        Returns:
            The same tensors.
        """
        return list(features)


class MultiModalFusion(nn.Module):
    """Gate computed from all branches and applied back to each of them.

    Args:
        channels: channels ``C`` of each branch's feature at this stage.
        num_modalities: number of branches ``K`` (≥ 2).
        mode: ``"gate_residual"``, ``"gate"`` or ``"add"``.
        norm: normalisation after conv1 (``"batch"`` or ``"instance"``).

    Raises:
        ValueError: ``K < 2`` or unknown mode.
    """

    def __init__(
        self, channels: int, num_modalities: int, mode: str = "gate_residual", norm: str = "batch"
    ) -> None:
        super().__init__()
        if num_modalities < 2:
            raise ValueError(f"fusion needs at least 2 modalities, got {num_modalities}")
        if mode not in FUSION_COMBINE:
            raise ValueError(f"unknown fusion mode {mode!r}; expected one of {FUSION_MODES}")
        self.mode = mode
        self.num_modalities = num_modalities
        self.conv1 = ConvNormAct(num_modalities * channels, channels, 3, norm)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size=3, padding=1)
        self._combine = FUSION_COMBINE[mode]

    def gate(self, features: list[Tensor]) -> Tensor:
        """The shared gate ``g_s`` in (0, 1), shape of one branch feature."""
        return torch.sigmoid(self.conv2(self.conv1(torch.cat(features, dim=1))))

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Fuse the branch features.

        Args:
            features: K tensors ``(B, C, X, Y, Z)`` of equal shape.

        Returns:
            K fused tensors of the same shape.

        Raises:
            ValueError: wrong number of branches.
        """
        if len(features) != self.num_modalities:
            raise ValueError(f"expected {self.num_modalities} branch features, got {len(features)}")
        g = self.gate(features)
        return [self._combine(f, g) for f in features]


def build_fusion(mode: str, channels: int, num_modalities: int, norm: str = "batch") -> nn.Module:
    """Fusion module for one encoder stage.

    Args:
        mode: one of :data:`FUSION_MODES`.
        channels: channels of each branch feature.
        num_modalities: number of branches.
        norm: normalisation name.

    Returns:
        A module mapping a list of K branch features to a list of K fused features.

    Raises:
        ValueError: unknown mode.
    """
    if mode == "none":
        return NoFusion()
    return MultiModalFusion(channels, num_modalities, mode, norm)
