"""Full-input distillation for crops that lost an input (``method.options.missing_distill``).

With ``train.modality_dropout`` an unlabelled crop with one input zeroed keeps a single
branch of two, and the cross-branch consistency, which compares present branches, gives it
nothing: the pathway a missing-modality prediction uses (a branch next to a blank one)
learns from the few labelled crops that lost an input only. Here such a crop's present
branches learn, with the supervised loss (CE + Dice), the argmax of the mean softmax of
every branch on the *same crop with all its inputs* (a forward pass without gradient; the
sampler keeps the crop before dropout, ``image_full``). The teacher sees what the student
lacks, as in knowledge distillation for missing modalities; its pseudo-label goes through
the run's ``pseudo_prior`` like the cross pseudo-labels (``soft``: each branch's logits keep
their expected volume first).

The term is a mean over the unlabelled crops (a crop with every input counts zero), summed
over branches, like :func:`duetseg.methods.losses.masked_branch_consistency`, and is added to
the consistency term under the same weight.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from duetseg.methods.losses import class_argmax, graph_zero

__all__ = ["full_input_distillation"]


def full_input_distillation(student: list[torch.Tensor], teacher: list[torch.Tensor],
                            present: torch.Tensor,
                            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                            ) -> torch.Tensor:
    """Present branches of the crops that lost an input learn the full-input ensemble's argmax.

    Args:
        student: K branch logits ``(B, C, ...)`` on the crops as trained (inputs dropped).
        teacher: K branch logits, same shapes, on the same crops with every input.
        present: bool ``(B, K)`` mask of the inputs each crop kept.
        loss_fn: ``(logits, target) -> scalar``, e.g. ``SupervisedLoss``.

    Returns:
        Scalar loss; a zero connected to ``student``'s graph when no crop lost an input.
    """
    batch = student[0].shape[0]
    rows = (~present.all(1)).nonzero().flatten().to(student[0].device)
    total = graph_zero(student)
    if rows.numel() == 0:
        return total
    with torch.no_grad():
        probs = [torch.softmax(t.index_select(0, rows).float(), 1) for t in teacher]
        target = class_argmax(torch.stack(probs).mean(0))
    kept = present.to(student[0].device).index_select(0, rows)
    for m, logits in enumerate(student):
        here = kept[:, m]
        if bool(here.any()):
            crops = rows[here]
            total = total + loss_fn(logits.index_select(0, crops), target[here]) * (
                crops.numel() / batch)
    return total
