"""Cross-branch losses on hard pseudo-labels: each branch learns an argmax of the others.

The consistency targets of ``method.options.consistency`` other than the soft MSE
(``hard_pseudo``, ``cross_pseudo``, ``ensemble_pseudo``, ``confident_pseudo``,
``foreground_pseudo``), and the masked CE + Dice they share.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from duetseg.methods.losses import class_argmax

__all__ = ["hard_pseudo_ce", "cross_pseudo_supervision", "cross_targets", "masked_ce_dice",
           "confident_pseudo_supervision", "foreground_cross_pseudo"]


def _target_probs(logits: list[torch.Tensor],
                  teacher: list[torch.Tensor] | None) -> list[torch.Tensor]:
    """Detached softmax of the pseudo-labels' source: ``teacher`` if given, else ``logits``."""
    return [torch.softmax(lg.detach(), 1) for lg in (logits if teacher is None else teacher)]


def hard_pseudo_ce(logits: list[torch.Tensor], threshold: float,
                   teacher: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Cross pseudo-labels: each branch learns the others' argmax where they are confident.

    Branch ``m``'s target is the argmax of the mean detached softmax of the other branches;
    voxels where that mean's largest probability is below ``threshold`` are masked out. The
    masked cross-entropy is averaged over all voxels (masked ones count as zero), summed
    over branches.

    Args:
        logits: logits of each branch ``(B, C, ...)``, same shape.
        threshold: confidence in [0, 1) a pseudo-label needs.
        teacher: the pseudo-labels' source logits (default ``logits``; e.g. unmixed crops).

    Returns:
        Scalar loss.
    """
    probs = _target_probs(logits, teacher)
    total = logits[0].new_zeros(())
    for m, lg in enumerate(logits):
        others = torch.stack([q for n, q in enumerate(probs) if n != m]).mean(0)
        confidence, target = others.max(dim=1)
        ce = F.cross_entropy(lg, target, reduction="none")
        total = total + torch.mean(ce * (confidence >= threshold).to(ce.dtype))
    return total


def cross_pseudo_supervision(logits: list[torch.Tensor],
                             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                             include_self: bool = False,
                             teacher: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Cross pseudo supervision: each branch learns the others' argmax with ``loss_fn``.

    Branch ``m``'s target is the argmax of the mean detached softmax of the other branches,
    unmasked, and its loss is ``loss_fn`` (CE + Dice, like the labelled crops). Unlike a
    voxel-averaged MSE or CE, the Dice part weighs the pseudo-foreground as much as the
    background however small it is, so agreeing on "background everywhere" is not the
    cheapest way down when one branch still sees a tumour.

    With ``include_self`` every branch learns the argmax of the mean of *all* branches
    (the ensemble's prediction): per voxel the more confident branch carries the label, so
    a branch that is confidently right is not taught the other's unsure mistake.

    Args:
        logits: logits of each branch ``(B, C, ...)``, same shape.
        loss_fn: ``(logits, target) -> scalar``, e.g. ``SupervisedLoss``.
        include_self: target from every branch (ensemble) instead of the other ones.
        teacher: the pseudo-labels' source logits (default ``logits``; e.g. unmixed crops).

    Returns:
        Scalar loss, summed over branches.
    """
    if include_self:
        ensemble = class_argmax(torch.stack(_target_probs(logits, teacher)).mean(0))
        targets = [ensemble] * len(logits)
    else:
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
    probs = _target_probs(logits, None)
    if len(probs) == 1:
        return [class_argmax(probs[0])]
    return [class_argmax(torch.stack([q for k, q in enumerate(probs) if k != m]).mean(0))
            for m in range(len(probs))]


_MASKED_DICE = DiceLoss(include_background=False, batch=True)


def masked_ce_dice(logits: torch.Tensor, target: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """The supervised CE + Dice (``SupervisedLoss``) on the voxels where ``mask`` is True.

    Cross-entropy summed over the masked voxels and divided by the number of all voxels
    (masked-out ones count as zero); soft Dice of the foreground classes over the batch with
    both the softmax and the one-hot target zeroed outside the mask (MONAI ``DiceLoss``).
    With an all-True mask it equals ``SupervisedLoss`` (batch Dice). A float mask
    weighs each voxel's CE and its softmax and target in the Dice by its value.

    Args:
        logits: ``(B, C, ...)``.
        target: ``(B, ...)`` class indices.
        mask: ``(B, ...)`` bool, or float weights in [0, 1].

    Returns:
        Scalar loss.
    """
    weight = mask.to(logits.dtype)
    ce = (F.cross_entropy(logits, target, reduction="none") * weight).sum() / weight.numel()
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(logits.dtype)
    keep = weight.unsqueeze(1)
    return ce + _MASKED_DICE(torch.softmax(logits, 1) * keep, onehot * keep)


def confident_pseudo_supervision(logits: list[torch.Tensor],
                                 teacher: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Cross pseudo-labels where the teaching branch is the more confident one, per voxel.

    At each voxel the branch with the largest top-class probability (the first on ties)
    teaches: every other branch learns its argmax there with :func:`masked_ce_dice`, and the
    teaching branch itself gets no loss at that voxel. Unlike :func:`cross_pseudo_supervision`
    a branch is not pulled towards a less sure branch's mistake (on real BraTS the T2
    branch lost Dice where the T1ce branch was worse, BENCHMARKS.md), and unlike the
    ensemble target no branch learns its own prediction (which shrank the tumour there).
    Measured there it over-segments instead: a branch that is confidently wrong gets no loss
    where it is the surer one, so nothing corrects it and the other branch learns its false
    positives (not the default).

    Args:
        logits: logits of each branch ``(B, C, ...)``, same shape.
        teacher: the pseudo-labels' source logits (default ``logits``; e.g. unmixed crops).

    Returns:
        Scalar loss, summed over branches.
    """
    stacked = torch.stack(_target_probs(logits, teacher))  # (K, B, C, ...)
    confidence, labels = stacked.max(dim=2)  # (K, B, ...)
    teaching = class_argmax(confidence, dim=0)  # (B, ...)
    target = torch.gather(labels, 0, teaching.unsqueeze(0))[0]
    total = logits[0].new_zeros(())
    for m, lg in enumerate(logits):
        total = total + masked_ce_dice(lg, target, teaching != m)
    return total


def foreground_cross_pseudo(logits: list[torch.Tensor],
                            teacher: list[torch.Tensor] | None = None,
                            erase_weight: float = 0.0) -> torch.Tensor:
    """Cross pseudo supervision in which another branch's background never erases a foreground.

    Branch ``m`` learns the other branches' argmax (:func:`cross_targets`) with
    :func:`masked_ce_dice`, except at the voxels where that argmax is background while
    ``m``'s own detached argmax is foreground: there ``m``'s loss is weighted by
    ``erase_weight`` (0: no loss). Foreground still passes from branch to branch both ways,
    background fully only where the learner agrees. ``erase_weight`` 1 is plain cross pseudo
    supervision with batch Dice.

    Why: with plain cross pseudo-labels a foreground voxel survives only where the other
    branch also sees it, so the branches learn each other's misses and the predicted tumour
    shrinks towards the intersection. On real BraTS with 4 labelled cases that is what
    happened (BENCHMARKS.md): the T2 branch learnt the T1ce branch's misses in the oedema,
    which T1ce barely shows, and one fold predicted no tumour on 3 of 5 test cases. The
    weaker branch cannot erase what the stronger one sees; it is still taught what it misses.
    The opposite risk, measured there with 2 labelled cases: at ``erase_weight`` 0 nothing
    removes a false positive in the unlabelled crops once one branch predicts it (the other
    learns it), and on one fold the tumour grew to 25 times its volume.

    Args:
        logits: logits of each branch ``(B, C, ...)``, same shape.
        teacher: the pseudo-labels' source logits (also the learner's own detached
            argmax; default ``logits``).
        erase_weight: weight of a background pseudo-label on the learner's foreground.

    Returns:
        Scalar loss, summed over branches.
    """
    source = [lg.detach() for lg in (logits if teacher is None else teacher)]
    targets = cross_targets(source)
    total = logits[0].new_zeros(())
    for lg, own, target in zip(logits, source, targets):
        contested = (target == 0) & (class_argmax(own) > 0)
        weight = 1.0 - (1.0 - erase_weight) * contested.to(lg.dtype)
        total = total + masked_ce_dice(lg, target, weight)
    return total
