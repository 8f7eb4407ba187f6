"""Losses shared by methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

__all__ = ["SupervisedLoss", "cross_branch_mse"]


class SupervisedLoss(torch.nn.Module):
    """Cross-entropy + soft Dice (paper Eq. 4), Dice over all classes as in SSL4MIS.

    Args:
        batch_dice: compute Dice over the whole batch (stable when a crop has no
            foreground) instead of per crop.
    """

    def __init__(self, batch_dice: bool = True):
        super().__init__()
        self.dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=False,
                             batch=batch_dice)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target) + self.dice(logits, target.unsqueeze(1))


def cross_branch_mse(probs: list[torch.Tensor]) -> torch.Tensor:
    """Contrastive mutual learning (paper Eq. 5-6): each branch pulled to the others' targets.

    For two branches this is ``mean((p_a - sg(p_b))^2) + mean((p_b - sg(p_a))^2)``; with K > 2
    each branch is pulled to the detached mean of the other branches. ``sg`` = stop-gradient:
    no gradient reaches a branch through its role as pseudo-label.

    Args:
        probs: softmax probabilities of each branch, same shape.

    Returns:
        Scalar loss.
    """
    total = probs[0].new_zeros(())
    for m, p in enumerate(probs):
        others = [q.detach() for n, q in enumerate(probs) if n != m]
        target = others[0] if len(others) == 1 else torch.stack(others).mean(0)
        total = total + torch.mean((p - target) ** 2)
    return total
