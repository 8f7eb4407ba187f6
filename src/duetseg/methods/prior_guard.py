"""Pseudo-label prior guard: keeps the pseudo-labelled class volumes at the labelled ones'.

Self-training amplifies whatever volume bias the network has on the unlabelled cases: plain
cross pseudo-labels shrink the tumour towards the branches' intersection, a rule that never
erases foreground grows it towards their union (both measured on real BraTS,
BENCHMARKS.md). The guard is a force against both. It adds a per-class bias ``b`` to the
logits the pseudo-labels are taken from (a prior correction: ``argmax(logits + b)``), and
after every step moves ``b`` so that the class fractions of the pseudo-labels, averaged over
recent unlabelled crops, approach the class fractions of the labelled cases' ground truth in
crops drawn the same way (uniformly placed, as the unlabelled crops are):

    fraction <- m * fraction + (1 - m) * batch pseudo-label fractions
    b_c      <- clip(b_c + rate * clip(log target_c - log fraction_c, -1, 1), +-max_shift)

for every foreground class ``c`` (the background keeps ``b_0 = 0``). With ``cap_only`` the
bias never goes above 0: the guard only lowers a pseudo-labelled volume above the prior (a
brake on runaway growth) and never creates foreground. Only uncertain voxels
change label (a bias of 1 flips a voxel whose two logits differ by less than 1), so the
shape still comes from the network, and ``max_shift`` bounds how far a wrong prior (a few
labelled cases with unusually large or small tumours) can pull. The idea is distribution
alignment (ReMixMatch, Berthelot et al. 2020) applied to segmentation volumes, with an
integral controller instead of a rescaling of probabilities.

The state (bias, running fractions, target) lives in buffers, so checkpoints carry it and a
resumed run continues exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from duetseg.methods.losses import class_argmax

__all__ = ["PseudoLabelPrior"]

_EPS = 1e-4


class PseudoLabelPrior(nn.Module):
    """Per-class logit bias that steers pseudo-label volumes to a labelled prior.

    Args:
        num_classes: classes including background.
        rate: bias change per step at the largest (clipped, unit) log-ratio error.
        max_shift: bound on ``|b_c|``.
        momentum: of the running pseudo-label class fractions.
        cap_only: keep every bias <= 0 (only brake volumes above the prior).
    """

    def __init__(self, num_classes: int, rate: float = 0.02, max_shift: float = 3.0,
                 momentum: float = 0.98, cap_only: bool = False):
        super().__init__()
        self.rate, self.max_shift, self.momentum = float(rate), float(max_shift), float(momentum)
        self.cap_only = bool(cap_only)
        uniform = torch.full((num_classes,), 1.0 / num_classes)
        self.register_buffer("target", uniform.clone())
        self.register_buffer("fraction", uniform.clone())
        self.register_buffer("bias", torch.zeros(num_classes))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def set_target(self, fractions: np.ndarray | torch.Tensor) -> None:
        """Set the labelled class fractions; before the first update also the running ones.

        A resumed run sets the same target again and keeps its running fractions.

        Raises:
            ValueError: the fractions have the wrong length, are negative or sum to 0.
        """
        t = torch.as_tensor(np.asarray(fractions, dtype=np.float32))
        if t.shape != self.target.shape or bool((t < 0).any()) or float(t.sum()) <= 0:
            raise ValueError(f"expected {self.target.numel()} non-negative class fractions "
                             f"with a positive sum, got {t.tolist()}")
        t = t / t.sum()
        self.target.copy_(t)
        if int(self.steps) == 0:
            self.fraction.copy_(t)

    def shift(self, logits: list[torch.Tensor]) -> list[torch.Tensor]:
        """Detached ``logits`` (each ``(B, C, ...)``) with the class bias added."""
        view = (1, -1) + (1,) * (logits[0].dim() - 2)
        bias = self.bias.to(logits[0].dtype).view(view)
        return [lg.detach() + bias for lg in logits]

    @torch.no_grad()
    def update(self, shifted: list[torch.Tensor]) -> None:
        """Move the bias after a step whose pseudo-labels came from ``shifted`` logits."""
        counts = sum(torch.bincount(class_argmax(lg).flatten(), minlength=self.bias.numel())
                     for lg in shifted)
        batch = counts.to(self.fraction) / counts.sum().clamp_min(1)
        self.fraction.mul_(self.momentum).add_(batch, alpha=1.0 - self.momentum)
        error = (torch.log(self.target + _EPS) - torch.log(self.fraction + _EPS)).clamp(-1, 1)
        error[0] = 0.0
        upper = 0.0 if self.cap_only else self.max_shift
        self.bias.add_(error, alpha=self.rate).clamp_(-self.max_shift, upper)
        self.steps.add_(1)

    def extra_repr(self) -> str:
        return (f"rate={self.rate}, max_shift={self.max_shift}, momentum={self.momentum}, "
                f"cap_only={self.cap_only}")
