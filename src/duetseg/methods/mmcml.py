"""``mmcml``: multi-modal contrastive mutual learning + pseudo-label re-learning (Zhang et al.).

Zhang et al., "Multi-modal contrastive mutual learning and pseudo-label re-learning for
semi-supervised medical image segmentation", Medical Image Analysis 83 (2023). There is no
public code: this is our interpretation of the published description, and every choice below
is ours.

Network: one independent VNet per modality (a :class:`~duetseg.models.DuetNet` with
``fusion: none`` and ``mae: false`` whatever the model config says), each reading only its own
modality, so each branch is usable alone (``model.branch_input`` and ``model.branches`` act as
for DuetNet).

Losses:

- supervised: CE + Dice (:class:`~duetseg.methods.losses.SupervisedLoss`) on each network's
  labelled crops, summed over networks;
- area-similarity contrastive loss (ASC): each crop (or, with ``options.asc_grid = g > 1``,
  each of its ``g³`` sub-volumes, an "area") is one item. The similarity of modality a's item
  i and modality b's item j is the soft Dice of their foreground probabilities (classes 1..,
  ``(2 Σ p q + ε) / (Σ p² + Σ q² + ε)``, 1 for identical maps). Symmetric InfoNCE with
  temperature ``options.asc_temperature`` (0.1): the same area in the other modality is the
  positive, the other areas of the other modality are the negatives. Gradients reach both
  networks (mutual). Computed on all crops of the batch by default (more negatives; it needs
  no label), or on the unlabelled ones only (``options.asc_crops: unlabeled``). Known
  limitation: two areas that are both empty look alike, so empty negatives cannot be pushed
  apart; the loss then only acts through the areas that contain foreground;
- soft pseudo-label re-learning (PReL): the "stronger" modality of this batch is the one with
  the lowest (detached) supervised loss on the labelled crops (ties: the first modality). Its
  detached softmax on the unlabelled crops is the soft pseudo label for every other network,
  learnt with soft cross-entropy ``−Σ_c q_c log p_c`` (or MSE with ``options.prel_loss:
  mse``), averaged over the student networks. The teacher gets no gradient from this term.

Total ``L_sup + r(t) (w_asc L_asc + w_prel L_prel)`` with ``r(t) = exp(−5 (1 − t)²)`` over
``method.rampup_fraction`` of training (default 0.5), ``w_prel = method.consistency_weight``
(default 1.0) and ``w_asc = options.asc_weight`` (default 0.1).

Outputs: ``branch_a``, ``branch_b``, ... (each modality's own network) and ``ensemble``
(mean softmax, primary).
"""

from __future__ import annotations

import dataclasses
from itertools import combinations
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from duetseg.config import StrictModel
from duetseg.methods.base import MethodContext, sigmoid_rampup
from duetseg.methods.dual_branch import DualBranchMethod

__all__ = ["MMCML", "area_similarity_contrastive", "pseudo_label_relearning"]


def _areas(probs: torch.Tensor, grid: int) -> torch.Tensor:
    """Foreground probabilities ``(B, C, X, Y, Z)`` → ``(B·grid³, D)`` area vectors."""
    fg = probs[:, 1:]
    b, c, *size = fg.shape
    if any(s % grid for s in size):
        raise ValueError(f"crop size {tuple(size)} is not divisible by asc_grid={grid}")
    x, y, z = (s // grid for s in size)
    fg = fg.reshape(b, c, grid, x, grid, y, grid, z).permute(0, 2, 4, 6, 1, 3, 5, 7)
    return fg.reshape(b * grid**3, -1)


def area_similarity_contrastive(
    p_a: torch.Tensor,
    p_b: torch.Tensor,
    temperature: float = 0.1,
    grid: int = 1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Symmetric InfoNCE over areas with soft-Dice similarity of foreground probabilities.

    Args:
        p_a: ``(B, C, X, Y, Z)`` softmax of modality a.
        p_b: same shape, modality b, same crops in the same order.
        temperature: InfoNCE temperature.
        grid: split each crop into ``grid³`` areas (1 = one area per crop).
        eps: Dice smoothing.

    Returns:
        Scalar loss; lower when area i of a matches area i of b better than the other areas.

    Raises:
        ValueError: fewer than 2 areas or a size not divisible by ``grid``.
    """
    a, b = _areas(p_a, grid), _areas(p_b, grid)
    n = a.shape[0]
    if n < 2:
        raise ValueError("the area-similarity contrastive loss needs at least 2 areas")
    cross = a @ b.t()
    norms = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :]
    logits = (2 * cross + eps) / (norms + eps) / temperature
    target = torch.arange(n, device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def pseudo_label_relearning(
    logits: list[torch.Tensor], sup_losses: list[torch.Tensor], kind: str = "soft_ce"
) -> tuple[torch.Tensor, int]:
    """The strongest modality's detached softmax teaches the others.

    Args:
        logits: per-modality logits ``(B, C, ...)`` of the unlabelled crops.
        sup_losses: per-modality supervised losses of this batch (only their values are used).
        kind: ``"soft_ce"`` (``−Σ_c q_c log p_c``, voxel mean) or ``"mse"`` (on softmaxes).

    Returns:
        ``(loss averaged over the students, index of the teacher)``.

    Raises:
        ValueError: unknown ``kind`` or fewer than 2 modalities.
    """
    if len(logits) < 2 or len(logits) != len(sup_losses):
        raise ValueError("pseudo-label re-learning needs >= 2 modalities, one loss each")
    teacher = int(torch.stack([s.detach() for s in sup_losses]).argmin())
    target = torch.softmax(logits[teacher].detach(), 1)
    terms = []
    for m, lg in enumerate(logits):
        if m == teacher:
            continue
        if kind == "soft_ce":
            terms.append(-(target * torch.log_softmax(lg, 1)).sum(1).mean())
        elif kind == "mse":
            terms.append(torch.mean((torch.softmax(lg, 1) - target) ** 2))
        else:
            raise ValueError(f"unknown pseudo-label loss {kind!r}; use 'soft_ce' or 'mse'")
    return torch.stack(terms).mean(), teacher


class MMCML(DualBranchMethod):
    """Decoupled per-modality networks + ASC + soft pseudo-label re-learning."""

    name = "mmcml"
    table_order = 6
    description = ("MMCML: decoupled per-modality VNets, area-similarity contrastive loss + "
                   "soft pseudo-label re-learning")
    default_weight = 1.0
    default_rampup_fraction = 0.5

    class Options(StrictModel):
        asc_weight: float = Field(default=0.1, ge=0)
        asc_temperature: float = Field(default=0.1, gt=0)
        asc_grid: int = Field(default=1, ge=1)
        asc_crops: Literal["all", "unlabeled"] = "all"
        prel_loss: Literal["soft_ce", "mse"] = "soft_ce"

    def __init__(self, ctx: MethodContext):
        decoupled = ctx.model.model_copy(update={"fusion": "none", "mae": False})
        super().__init__(dataclasses.replace(ctx, model=decoupled))

    def ramp(self, iteration: int) -> float:
        """``r(t)`` in [0, 1] shared by both unsupervised terms."""
        fraction = self.ctx.method.rampup_fraction
        if fraction is None:
            fraction = self.default_rampup_fraction
        return sigmoid_rampup(iteration, fraction * self.ctx.max_iterations)

    def asc(self, probs: list[torch.Tensor]) -> torch.Tensor:
        """ASC averaged over modality pairs."""
        pairs = list(combinations(range(len(probs)), 2))
        o = self.options
        return sum(area_similarity_contrastive(probs[i], probs[j], o.asc_temperature,
                                               o.asc_grid) for i, j in pairs) / len(pairs)

    def training_losses(self, image, label, iteration):
        logits = self.net(image)
        n = label.shape[0]
        sups = [self.sup_loss(lg[:n], label) for lg in logits]
        sup = torch.stack(sups).sum()
        losses = {"sup": sup}
        losses.update({f"sup_{name[-1]}": s.detach() for name, s in zip(self.branch_names(),
                                                                        sups)})
        total = sup
        ramp = self.ramp(iteration)
        start = n if self.options.asc_crops == "unlabeled" else 0
        if (image.shape[0] - start) * self.options.asc_grid**3 >= 2:
            asc = self.asc([torch.softmax(lg[start:], 1) for lg in logits])
            w_asc = self.options.asc_weight * ramp
            losses.update(asc=asc, asc_weight=torch.tensor(w_asc))
            total = total + w_asc * asc
        if image.shape[0] > n:
            prel, teacher = pseudo_label_relearning([lg[n:] for lg in logits], sups,
                                                    self.options.prel_loss)
            w_prel = self.weight * ramp
            losses.update(prel=prel, prel_weight=torch.tensor(w_prel),
                          prel_teacher=torch.tensor(float(teacher)))
            total = total + w_prel * prel
        losses["loss"] = total
        return losses

    def describe_outputs(self) -> dict[str, str]:
        desc = {name: f"independent network reading {reading}" + ("" if mod is None else " only")
                for name, mod, reading in zip(self.branch_names(), self.branch_inputs(),
                                              self.branch_readings())}
        desc["ensemble"] = "mean of the networks' softmax"
        return desc
