"""Cross pseudo supervision: each branch learns the argmax of the other branches."""

from __future__ import annotations

from collections.abc import Callable

import torch

from duetseg.methods.losses import class_argmax

__all__ = ["cross_pseudo_supervision", "cross_targets"]


def cross_pseudo_supervision(logits: list[torch.Tensor],
                             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                             teacher: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Cross pseudo supervision: each branch learns the others' argmax with ``loss_fn``.

    Branch ``m``'s target is the argmax of the mean detached softmax of the other branches,
    unmasked, and its loss is ``loss_fn`` (CE + Dice, like the labelled crops). Unlike a
    voxel-averaged MSE or CE, the Dice part weighs the pseudo-foreground as much as the
    background however small it is, so agreeing on "background everywhere" is not the
    cheapest way down when one branch still sees a tumour.

    Args:
        logits: logits of each branch ``(B, C, ...)``, same shape.
        loss_fn: ``(logits, target) -> scalar``, e.g. ``SupervisedLoss``.
        teacher: the pseudo-labels' source logits (default ``logits``; e.g. volume-shifted).

    Returns:
        Scalar loss, summed over branches.
    """
    targets = cross_targets(logits if teacher is None else teacher)
    total = logits[0].new_zeros(())
    for lg, target in zip(logits, targets):
        total = total + loss_fn(lg, target)
    return total


def cross_targets(logits: list[torch.Tensor]) -> list[torch.Tensor]:
    """Branch ``m``'s pseudo-label: the argmax of the other branches' mean detached softmax.

    Args:
        logits: each branch's logits ``(B, C, ...)``, the pseudo-labels' source.

    Returns:
        One ``(B, ...)`` class-index map per branch (with one branch: its own argmax).
    """
    probs = [torch.softmax(lg.detach(), 1) for lg in logits]
    if len(probs) == 1:
        return [class_argmax(probs[0])]
    return [class_argmax(torch.stack([q for k, q in enumerate(probs) if k != m]).mean(0))
            for m in range(len(probs))]
