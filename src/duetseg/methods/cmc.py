"""``cmc``: cross-modality collaboration (Zhou et al., MICCAI 2024), our implementation.

Network: :class:`duetseg.models.cmcnet.CMCNet`: one encoder and one decoder shared by all
modalities (each modality passes through the same weights as a single-channel image), SE
channel attention on the bottleneck, a ``concat → conv → conv → sigmoid`` fusion gate and
``own + own ⊙ gate`` per branch before decoding.

Losses (choices where the paper leaves room are marked *choice*):

- supervised: CE + Dice (:class:`~duetseg.methods.losses.SupervisedLoss`) on every
  modality's output for the labelled crops, summed over modalities;
- channel-wise semantic consistency: NT-Xent (SimCLR) between the modalities' pooled
  bottleneck channel vectors, temperature 0.5; for crop i the positive is the same crop in
  the other modality, the negatives are all other crops of both modalities (2B − 2 per
  anchor). With K > 2 modalities the mean over modality pairs. *Choice*: no projection head,
  and computed on every crop of the batch (labelled + unlabelled; it needs no label), or on
  the unlabelled ones only with ``options.consistency_crops: unlabeled``;
- anatomical consistency: ``1 − soft Dice`` between the modalities' foreground probabilities
  (classes 1.., sums over the batch, squared-sum denominator so identical predictions give
  exactly 0), mean over modality pairs, same crops as above. No stop-gradient: both
  modalities are pulled together;
- schedule: ``L = L_sup + w_sem · r(t) · L_sem + w_anat · (1 − r(t)) · L_anat`` with
  ``r(t) = exp(−5 (1 − t)²)`` over ``method.rampup_fraction`` of training (default 0.5), so
  the anatomical term ramps *down* from ~1 to 0 while the semantic one ramps up. *Choice*:
  ``w_sem = method.consistency_weight`` (default 0.1) and ``w_anat = options.
  anatomical_weight`` (default 1.0); the paper's constants are not known to us.

Both consistency terms keep their gradients. The public CMC release computes them inside
``torch.no_grad()``, so they add a constant to the loss and train nothing; that is not
reproduced here.

Outputs: ``branch_a``, ``branch_b``, ... (each modality's branch) and ``ensemble`` (mean
softmax, primary).
"""

from __future__ import annotations

from itertools import combinations
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from duetseg.config import StrictModel
from duetseg.methods.base import Method, MethodContext, sigmoid_rampup
from duetseg.methods.dual_branch import BranchOutputs
from duetseg.methods.losses import SupervisedLoss
from duetseg.methods.networks import cmcnet_from_config

__all__ = ["CMC", "nt_xent", "soft_dice_dissimilarity"]


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Normalised-temperature cross-entropy between two views of B items.

    Args:
        z_a: ``(B, D)`` features of view a.
        z_b: ``(B, D)`` features of view b (row i pairs with row i of ``z_a``).
        temperature: softmax temperature.

    Returns:
        Mean over the 2B anchors of ``−log(exp(s_ii'/τ) / Σ_{j≠i} exp(s_ij/τ))`` with cosine
        similarities ``s``.

    Raises:
        ValueError: shapes differ or B < 2 (no negatives).
    """
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise ValueError(f"expected two (B, D) tensors, got {tuple(z_a.shape)}, "
                         f"{tuple(z_b.shape)}")
    n = z_a.shape[0]
    if n < 2:
        raise ValueError("NT-Xent needs at least 2 items per view")
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def soft_dice_dissimilarity(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``1 − (2 Σ p q + ε) / (Σ p² + Σ q² + ε)`` over foreground channels (1..) and the batch.

    Args:
        p: ``(B, C, ...)`` probabilities.
        q: same shape.
        eps: smoothing.

    Returns:
        Scalar in [0, 1]; exactly 0 when ``p == q``.
    """
    a, b = p[:, 1:], q[:, 1:]
    dice = (2 * (a * b).sum() + eps) / ((a * a).sum() + (b * b).sum() + eps)
    return 1 - dice


class CMC(BranchOutputs, Method):
    """Shared encoder/decoder, fused bottleneck, semantic + anatomical consistency."""

    name = "cmc"
    table_order = 7
    description = ("CMC: shared encoder/decoder over modalities, bottleneck fusion, NT-Xent "
                   "semantic + Dice anatomical consistency")
    default_weight = 0.1
    default_rampup_fraction = 0.5

    class Options(StrictModel):
        temperature: float = Field(default=0.5, gt=0)
        anatomical_weight: float = Field(default=1.0, ge=0)
        consistency_crops: Literal["all", "unlabeled"] = "all"
        se_reduction: int = Field(default=4, ge=1)

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.net = cmcnet_from_config(self.num_modalities, ctx.num_classes, ctx.model,
                                      self.options.se_reduction)
        self.sup_loss = SupervisedLoss()
        self.primary_output = "ensemble"

    def ramp(self, iteration: int) -> float:
        """``r(t)``: the ramp-up factor in [0, 1] (the ramp-down is ``1 − r(t)``)."""
        fraction = self.ctx.method.rampup_fraction
        if fraction is None:
            fraction = self.default_rampup_fraction
        return sigmoid_rampup(iteration, fraction * self.ctx.max_iterations)

    def consistency_terms(
        self, logits: list[torch.Tensor], pooled: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Semantic (NT-Xent) and anatomical (1 − Dice) terms, mean over modality pairs.

        Args:
            logits: per-modality logits of the crops to use.
            pooled: per-modality pooled bottleneck vectors of the same crops.

        Returns:
            ``(semantic, anatomical)`` scalars, both with gradients.
        """
        probs = [torch.softmax(lg, 1) for lg in logits]
        pairs = list(combinations(range(len(logits)), 2))
        semantic = sum(nt_xent(pooled[i], pooled[j], self.options.temperature)
                       for i, j in pairs) / len(pairs)
        anatomical = sum(soft_dice_dissimilarity(probs[i], probs[j]) for i, j in pairs)
        return semantic, anatomical / len(pairs)

    def training_losses(self, image, label, iteration):
        logits, pooled = self.net.forward_with_features(image)
        n = label.shape[0]
        sup = sum(self.sup_loss(lg[:n], label) for lg in logits)
        losses = {"sup": sup}
        total = sup
        start = n if self.options.consistency_crops == "unlabeled" else 0
        if image.shape[0] - start >= 2:
            semantic, anatomical = self.consistency_terms(
                [lg[start:] for lg in logits], [p[start:] for p in pooled])
            ramp = self.ramp(iteration)
            w_sem = self.weight * ramp
            w_anat = self.options.anatomical_weight * (1.0 - ramp)
            losses.update(semantic=semantic, anatomical=anatomical,
                          semantic_weight=torch.tensor(w_sem),
                          anatomical_weight=torch.tensor(w_anat))
            total = total + w_sem * semantic + w_anat * anatomical
        losses["loss"] = total
        return losses

    def describe_outputs(self) -> dict[str, str]:
        desc = {name: f"shared network's branch for {mod} (fused bottleneck)"
                for name, mod in zip(self.branch_names(), self.ctx.modalities)}
        desc["ensemble"] = "mean of the branches' softmax"
        return desc
