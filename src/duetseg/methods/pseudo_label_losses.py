"""Cross pseudo supervision: each branch learns the argmax of the other branches."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from duetseg.methods.losses import class_argmax

__all__ = ["cross_pseudo_supervision", "cross_targets"]


def cross_pseudo_supervision(logits: list[torch.Tensor],
                             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                             teacher: list[torch.Tensor] | None = None,
                             teachers: Sequence[int] | None = None) -> torch.Tensor:
    """Cross pseudo supervision: each branch learns the others' argmax with ``loss_fn``.

    Branch ``m``'s target is the argmax of the mean detached softmax of the other teaching
    branches, unmasked, and its loss is ``loss_fn`` (CE + Dice, like the labelled crops).
    Unlike a voxel-averaged MSE or CE, the Dice part weighs the pseudo-foreground as much as
    the background however small it is, so agreeing on "background everywhere" is not the
    cheapest way down when one branch still sees a tumour.

    Args:
        logits: logits of each branch ``(B, C, ...)``, same shape.
        loss_fn: ``(logits, target) -> scalar``, e.g. ``SupervisedLoss``.
        teacher: the pseudo-labels' source logits (default ``logits``; e.g. volume-shifted).
        teachers: the branches whose predictions make the pseudo-labels (None: every
            branch); see :func:`cross_targets`.

    Returns:
        Scalar loss, summed over the branches that have a target.
    """
    targets = cross_targets(logits if teacher is None else teacher, teachers)
    total = logits[0].new_zeros(())
    for lg, target in zip(logits, targets):
        if target is not None:
            total = total + loss_fn(lg, target)
    return total


def cross_targets(logits: list[torch.Tensor],
                  teachers: Sequence[int] | None = None) -> list[torch.Tensor | None]:
    """Branch ``m``'s pseudo-label: the argmax of the mean detached softmax of the teaching
    branches other than ``m``.

    Args:
        logits: each branch's logits ``(B, C, ...)``, the pseudo-labels' source.
        teachers: indices of the teaching branches (None: every branch). A branch outside
            them learns the mean of all of them and teaches none; a teacher learns the mean
            of the other teachers.

    Returns:
        One ``(B, ...)`` class-index map per branch; None for the only teacher, which has
        no other to learn from (with one branch and ``teachers`` None: its own argmax).

    Raises:
        ValueError: a teacher index outside the branches, or no teacher.
    """
    probs = [torch.softmax(lg.detach(), 1) for lg in logits]
    if len(probs) == 1 and teachers is None:
        return [class_argmax(probs[0])]
    sources = range(len(probs)) if teachers is None else sorted(set(teachers))
    if not sources or min(sources) < 0 or max(sources) >= len(probs):
        raise ValueError(f"teachers {list(sources)} must be a non-empty subset of the "
                         f"{len(probs)} branches 0..{len(probs) - 1}")
    targets: list[torch.Tensor | None] = []
    for m in range(len(probs)):
        others = [probs[k] for k in sources if k != m]
        targets.append(class_argmax(torch.stack(others).mean(0)) if others else None)
    return targets
