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

__all__ = ["PseudoLabelPrior", "pseudo_label_counts", "soft_volume_shift"]

_EPS = 1e-4


def pseudo_label_counts(logits: list[torch.Tensor], num_classes: int) -> torch.Tensor:
    """Voxels per class of the argmax of every tensor in ``logits``, summed."""
    return sum(torch.bincount(class_argmax(lg).flatten(), minlength=num_classes)
               for lg in logits)


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
        counts = pseudo_label_counts(shifted, self.bias.numel())
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


def soft_volume_shift(logits: list[torch.Tensor], iterations: int = 12) -> list[torch.Tensor]:
    """Detached ``logits`` with a per-crop class bias that keeps each crop's expected volume.

    The argmax of a branch whose tumour probabilities sit mostly below (above) 0.5 labels
    less (more) tumour than the branch expects, ``sum(softmax)``; learnt as a pseudo-label,
    that gap feeds back step after step (the shrinking and growth measured with cross
    pseudo-labels on real BraTS). Here every crop of every branch gets its own bias ``b``
    (background 0) such that the class counts of ``argmax(logits + b)`` equal the crop's
    soft class volumes: the pseudo-label keeps the branch's own expected volume, with the
    voxels ranked by the branch's scores, and needs no labelled prior.

    Two classes are solved exactly (the ``round(sum p_1)`` voxels with the largest logit
    margin are labelled 1); more classes by ``iterations`` damped log-ratio updates of the
    bias, which bring the counts close to the soft volumes.

    Args:
        logits: each branch's logits ``(B, C, ...)``.
        iterations: updates for ``C > 2``.

    Returns:
        The shifted, detached logits, same shapes.
    """
    return [_shift_one(lg.detach(), iterations) for lg in logits]


@torch.no_grad()
def _shift_one(logits: torch.Tensor, iterations: int) -> torch.Tensor:
    b, c = logits.shape[:2]
    flat = logits.float().reshape(b, c, -1)
    soft = torch.softmax(flat, 1).sum(2)  # (B, C) expected voxels per class
    bias = flat.new_zeros(b, c)
    if c == 2:
        margin = torch.sort(flat[:, 1] - flat[:, 0], dim=1, descending=True).values
        n = margin.shape[1]
        k = soft[:, 1].round().long().clamp(0, n)
        # the bias puts the decision boundary halfway between the k-th and (k+1)-th margins
        padded = torch.cat([margin[:, :1] + 1.0, margin, margin[:, -1:] - 1.0], 1)
        rows = torch.arange(b, device=flat.device)
        bias[:, 1] = -0.5 * (padded[rows, k] + padded[rows, k + 1])
    else:
        for _ in range(iterations):
            hard = torch.nn.functional.one_hot(class_argmax(flat + bias[..., None]), c)
            counts = hard.sum(1).to(flat)
            step = (torch.log(soft + 1.0) - torch.log(counts + 1.0)).clamp(-1.0, 1.0)
            step[:, 0] = 0.0
            bias.add_(step, alpha=0.5)
    view = (b, c) + (1,) * (logits.dim() - 2)
    return logits + bias.to(logits.dtype).view(view)
