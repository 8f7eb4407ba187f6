"""Losses shared by methods."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

__all__ = ["SupervisedLoss", "class_argmax", "cross_branch_mse", "confident_teacher_mse",
           "hard_pseudo_ce", "cross_pseudo_supervision", "cross_targets", "masked_ce_dice",
           "confident_pseudo_supervision", "foreground_cross_pseudo",
           "graph_zero", "masked_branch_supervised", "masked_branch_consistency"]


def class_argmax(t: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``t.argmax(dim)``, fast on CPU: the index of the largest value, the first one on ties.

    On CPU, ``argmax`` along a dimension that is not the innermost one is a slow strided
    reduction: 52 ms for (2, 2, 48, 48, 48) logits along dim 1 against 1.3 ms for
    ``max(dim).indices`` (torch 2.13, 2 threads), about 5 % of a cpu_small training step.
    Both return the first maximal index, so the results are identical.
    """
    return t.max(dim=dim).indices


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


def cross_branch_mse(probs: list[torch.Tensor],
                     teacher: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Contrastive mutual learning (paper Eq. 5-6): each branch pulled to the others' targets.

    For two branches this is ``mean((p_a - sg(p_b))^2) + mean((p_b - sg(p_a))^2)``; with K > 2
    each branch is pulled to the detached mean of the other branches. ``sg`` = stop-gradient:
    no gradient reaches a branch through its role as pseudo-label.

    Args:
        probs: softmax probabilities of each branch, same shape.
        teacher: the targets' source, one per branch (default ``probs``; e.g. predictions
            on unmixed crops mixed like the inputs, ``method.options.cutmix``).

    Returns:
        Scalar loss.
    """
    source = probs if teacher is None else teacher
    total = probs[0].new_zeros(())
    for m, p in enumerate(probs):
        others = [q.detach() for n, q in enumerate(source) if n != m]
        target = others[0] if len(others) == 1 else torch.stack(others).mean(0)
        total = total + torch.mean((p - target) ** 2)
    return total


def confident_teacher_mse(probs: list[torch.Tensor],
                          teacher: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Per voxel, the most confident branch teaches the others (MSE to its detached softmax).

    Confidence is a branch's largest class probability at the voxel. The teaching branch
    gets no loss there, so a weak branch (e.g. one that reads T1ce, which barely shows
    oedema) no longer pulls a stronger one towards its mistakes where it is less sure.
    Normalised like :func:`cross_branch_mse` (mean over all elements, summed over branches).

    Args:
        probs: softmax probabilities of each branch ``(B, C, ...)``, same shape.
        teacher: the targets' source, as in :func:`cross_branch_mse`.

    Returns:
        Scalar loss.
    """
    source = probs if teacher is None else teacher
    stacked = torch.stack([p.detach() for p in source])  # (K, B, C, ...)
    teaching = class_argmax(stacked.amax(dim=2), dim=0).unsqueeze(0)  # (1, B, ...)
    target = torch.gather(stacked, 0, teaching.unsqueeze(2).expand_as(stacked[:1]))[0]
    total = probs[0].new_zeros(())
    for m, p in enumerate(probs):
        student = (teaching[0] != m).unsqueeze(1).to(p.dtype)
        total = total + torch.mean(student * (p - target) ** 2)
    return total


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
        teacher: the pseudo-labels' source logits, as in :func:`cross_branch_mse`.

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
        loss_fn: ``(logits, target) -> scalar``, e.g. :class:`SupervisedLoss`.
        include_self: target from every branch (ensemble) instead of the other ones.
        teacher: the pseudo-labels' source logits, as in :func:`cross_branch_mse`.

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
    """:class:`SupervisedLoss` restricted to the voxels where ``mask`` is True.

    Cross-entropy summed over the masked voxels and divided by the number of all voxels
    (masked-out ones count as zero); soft Dice of the foreground classes over the batch with
    both the softmax and the one-hot target zeroed outside the mask (MONAI ``DiceLoss``).
    With an all-True mask it equals :class:`SupervisedLoss` (batch Dice). A float mask
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
        teacher: the pseudo-labels' source logits, as in :func:`cross_branch_mse`.

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
            argmax), as in :func:`cross_branch_mse`.
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


def graph_zero(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A scalar 0 connected to ``tensors``' graph: their parameters get a (zero) gradient.

    Keeps every parameter in the backward pass when a masked loss has nothing left (data
    parallel training expects a gradient for each of them).
    """
    return sum(t.sum() for t in tensors) * 0.0


def masked_branch_supervised(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                             logits: list[torch.Tensor], label: torch.Tensor,
                             present: torch.Tensor) -> torch.Tensor:
    """Sum over branches of ``loss_fn`` on the labelled crops where the branch's input exists.

    Branch ``m``'s loss is ``loss_fn`` on the crops ``b < n`` with ``present[b, m]`` only
    (a batch Dice is thus computed over those crops), zero when there are none.

    Args:
        loss_fn: ``(logits, target) -> scalar`` (e.g. :class:`SupervisedLoss`).
        logits: K branch logits ``(B, C, ...)``; the first ``n = label.shape[0]`` labelled.
        label: ``(n, ...)`` class indices.
        present: bool ``(B, K)`` (or ``(n, K)``) mask of the present inputs.

    Returns:
        Scalar loss.
    """
    n = label.shape[0]
    keep = present[:n].cpu()
    total = graph_zero([lg[:n] for lg in logits])
    for m, lg in enumerate(logits):
        rows = keep[:, m]
        if bool(rows.all()):
            total = total + loss_fn(lg[:n], label)
        elif bool(rows.any()):
            idx = rows.nonzero().flatten().to(label.device)
            total = total + loss_fn(lg[:n].index_select(0, idx), label.index_select(0, idx))
    return total


def masked_branch_consistency(loss_fn: Callable[..., torch.Tensor],
                              logits: list[torch.Tensor], present: torch.Tensor,
                              teacher: list[torch.Tensor] | None = None) -> torch.Tensor:
    """A cross-branch consistency term where each crop involves its present branches only.

    ``loss_fn`` is one of the consistency terms above (a sum over the branches it is given
    of a mean over all elements). Crops are grouped by their set of present branches; a
    group with at least two runs ``loss_fn`` on those branches' logits of its crops, one
    with fewer contributes zero. Each group's value is weighted by its share of the ``B``
    crops, so the result is the mean over all crops of the per-crop terms (absent crops
    count as zero) and equals ``loss_fn(logits)`` when every input is present.

    Args:
        loss_fn: ``list of K' >= 2 logits (B', C, ...) -> scalar``; with ``teacher``,
            ``(logits, teacher logits) -> scalar``.
        logits: K branch logits ``(B, C, ...)``.
        present: bool ``(B, K)`` mask of the present inputs.
        teacher: K teacher logits, same shapes, subset like ``logits`` (None: not passed).

    Returns:
        Scalar loss.
    """
    batch = logits[0].shape[0]
    rows_of: dict[tuple[bool, ...], list[int]] = {}
    for b, row in enumerate(present.cpu().tolist()):
        rows_of.setdefault(tuple(row), []).append(b)
    total = graph_zero(logits)
    for key, rows in rows_of.items():
        branches = [m for m, here in enumerate(key) if here]
        if len(branches) < 2:
            continue
        idx = torch.tensor(rows, device=logits[0].device)
        part = [logits[m].index_select(0, idx) for m in branches]
        if teacher is None:
            value = loss_fn(part)
        else:
            value = loss_fn(part, [teacher[m].index_select(0, idx) for m in branches])
        total = total + value * (len(rows) / batch)
    return total
