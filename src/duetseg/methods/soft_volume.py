"""Pseudo-labels that keep each crop's expected class volume (``pseudo_prior: soft``).

Self-training amplifies whatever volume bias the network has on the unlabelled cases: plain
cross pseudo-labels shrank the tumour towards the branches' intersection on real BraTS. The
shift below makes each crop's pseudo-labels keep the source branch's own expected volume.
"""

from __future__ import annotations

import torch

from duetseg.methods.losses import class_argmax

__all__ = ["soft_volume_shift"]


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
