"""Volume anchor: the pseudo-labels keep the volume the branches predicted before mutual learning.

Volume-kept cross pseudo-labels (``pseudo_prior: soft``) hand each branch the other's
expected volume, and nothing ties that volume to anything measured: whatever bias the
pseudo-label loss has compounds step after step. On real BraTS with 2 labelled cases
CE + Dice pseudo-labels grew the tumour to about twice its true size on one fold and CE
alone shrank it to half on another (BENCHMARKS.md; ``tests/test_pseudo_loss_volume.py``
shows the Dice part's push on an ambiguous rim). The labelled cases cannot anchor it either:
two cases' tumour fraction was twice the unlabelled cases' on one fold.

The anchor is the branches' own estimate before mutual learning has moved it. Over a
recording window of training (by default from 10 % to 20 % of the iterations, while the
ramped-up unsupervised weight is still below about 0.2) it averages the tumour fraction of
the (soft) pseudo-labels on the unlabelled crops, i.e. what a network trained on the
labelled cases predicts there. From the window's end, a per-class logit bias
(:class:`~duetseg.methods.prior_guard.PseudoLabelPrior`, two-sided) steers the running
pseudo-label fractions to that average, before the per-crop soft volume shift, so each
crop keeps its own share and the total stays where it started. ``cap_only`` only brakes a
volume that grows above the record (the early estimate may be low).

State lives in buffers (checkpoints carry it; a resumed run continues exactly).
"""

from __future__ import annotations

import torch
from torch import nn

from duetseg.methods.prior_guard import (
    PseudoLabelPrior,
    pseudo_label_counts,
    soft_volume_shift,
)

__all__ = ["VolumeAnchor"]


class VolumeAnchor(nn.Module):
    """Records the pseudo-labels' class fractions in a window, then holds them there.

    Args:
        num_classes: classes including background.
        start: first iteration of the recording window.
        stop: the window's end (exclusive); the guard acts from here on.
        rate: bias change per step (see :class:`PseudoLabelPrior`).
        max_shift: bound on the bias.
        cap_only: only lower volumes above the record (``pseudo_prior: anchor_cap``).
    """

    def __init__(self, num_classes: int, start: int, stop: int, rate: float = 0.02,
                 max_shift: float = 5.0, cap_only: bool = False):
        super().__init__()
        if not 0 <= start < stop:
            raise ValueError(f"the recording window needs 0 <= start < stop, got {start}, {stop}")
        self.start, self.stop = int(start), int(stop)
        self.guard = PseudoLabelPrior(num_classes, rate, max_shift, cap_only=cap_only)
        self.register_buffer("recorded", torch.zeros(num_classes, dtype=torch.float64))

    def holding(self, iteration: int) -> bool:
        """Whether the anchor steers the pseudo-labels: the window is over and saw crops."""
        return iteration >= self.stop and float(self.recorded.sum()) > 0

    def pseudo_logits(self, logits: list[torch.Tensor], iteration: int) -> list[torch.Tensor]:
        """Detached logits whose per-crop argmax is the pseudo-label (soft volume kept).

        Before the window ends this is :func:`soft_volume_shift` alone; after it, the
        anchor's class bias is added first.
        """
        if self.holding(iteration):
            logits = self.guard.shift(logits)
        return soft_volume_shift(logits)

    @torch.no_grad()
    def update(self, pseudo: list[torch.Tensor], iteration: int) -> None:
        """Record (in the window) or steer towards the record (after it).

        Args:
            pseudo: the step's pseudo-label logits (from :meth:`pseudo_logits`).
            iteration: the step's iteration.
        """
        if self.holding(iteration):
            if int(self.guard.steps) == 0:  # first step after the window
                self.guard.set_target(self.recorded.float())
            self.guard.update(pseudo)
        elif self.start <= iteration < self.stop:
            self.recorded.add_(pseudo_label_counts(pseudo, self.recorded.numel()).to(self.recorded))

    @property
    def target(self) -> torch.Tensor:
        """The anchored class fractions (uniform until the window ends)."""
        return self.guard.target

    def extra_repr(self) -> str:
        return f"window=[{self.start}, {self.stop})"
