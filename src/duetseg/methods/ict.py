"""``ict``: Interpolation Consistency Training (Verma et al., 2019) on one VNet.

One VNet reads the modalities as input channels; the teacher is the EMA of the student
(:mod:`duetseg.methods.ema`). The unlabelled crops ``u`` are paired ``(u1, u2)``; for each pair
``lambda ~ Beta(alpha, alpha)`` (alpha = 0.2)::

    student input  = lambda u1 + (1 - lambda) u2
    target         = lambda softmax(teacher(u1)) + (1 - lambda) softmax(teacher(u2))
    L_unsup        = mean of (softmax(student(mix)) - target)^2
    L              = L_sup + w(t) L_unsup            w = 0.1 x exp(-5 (1 - t)^2) ramp

Interpretation choices:

- Pairing: with an even number ``n`` of unlabelled crops, ``u1`` is the first half and ``u2``
  the second half (n/2 mixed crops; with the usual 2 unlabelled crops, one mix as in
  SSL4MIS). With an odd ``n`` every crop is mixed with the next one (a roll of the batch by
  one), giving ``n`` mixed crops; a single crop is mixed with itself (plain consistency).
- One ``lambda`` per mixed crop, drawn with ``torch.distributions.Beta`` from the global torch
  generator (reproducible from a checkpoint's RNG state).
- The teacher runs once on all unlabelled crops (no gradient) and its softmaxes are paired
  like the inputs; in training mode BatchNorm therefore uses the statistics of all of them.
- The student runs once on the labelled crops followed by the mixed crops; CE + Dice on the
  labelled part. The EMA update happens in :meth:`ICT.after_step` with ``step = iteration+1``.
"""

from __future__ import annotations

import torch
from pydantic import Field

from duetseg.config import StrictModel
from duetseg.methods.base import MethodContext
from duetseg.methods.ema import EMATeacher
from duetseg.methods.single import SingleNetworkMethod

__all__ = ["ICT", "pair_unlabeled"]


def pair_unlabeled(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a batch into the two members of each mixing pair.

    Args:
        u: (n, ...) unlabelled items (crops or their teacher softmax).

    Returns:
        ``(u1, u2)`` of equal length: the two halves when ``n`` is even, otherwise ``u`` and
        ``u`` rolled by one along the batch.
    """
    n = u.shape[0]
    if n % 2 == 0:
        return u[: n // 2], u[n // 2:]
    return u, torch.roll(u, 1, dims=0)


class ICT(SingleNetworkMethod):
    """Student on mixed unlabelled crops pulled to the mix of the EMA teacher's softmaxes."""

    name = "ict"
    table_order = 2
    description = "ICT: mixup of unlabelled crops vs. mixed EMA-teacher softmaxes (one VNet)"
    default_weight = 0.1
    default_rampup_fraction = 0.5

    class Options(StrictModel):
        """ICT options.

        Attributes:
            alpha: both concentrations of the Beta distribution of lambda.
            ema_decay: ceiling of the EMA decay.
        """

        alpha: float = Field(default=0.2, gt=0.0)
        ema_decay: float = Field(default=0.99, ge=0.0, le=1.0)

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.teacher = EMATeacher(self.net, self.options.ema_decay)

    def sample_lambda(self, n: int) -> torch.Tensor:
        """``n`` mixing factors from Beta(alpha, alpha), on the CPU global generator."""
        a = torch.tensor(float(self.options.alpha))
        return torch.distributions.Beta(a, a).sample((n,))

    def mix(self, unlabeled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixed student inputs, their teacher targets and the factors used.

        Args:
            unlabeled: (n, K, X, Y, Z) unlabelled crops.

        Returns:
            ``(mixed_input, target, lam)`` with ``lam`` of shape (pairs,); ``target`` has no
            gradient.
        """
        u1, u2 = pair_unlabeled(unlabeled)
        lam = self.sample_lambda(u1.shape[0]).to(unlabeled.device, unlabeled.dtype)
        shape = (-1,) + (1,) * (unlabeled.dim() - 1)
        lam_b = lam.view(shape)
        mixed = lam_b * u1 + (1.0 - lam_b) * u2
        with torch.no_grad():
            probs = torch.softmax(self.teacher(unlabeled), 1)
            p1, p2 = pair_unlabeled(probs)
            target = lam_b * p1 + (1.0 - lam_b) * p2
        return mixed, target, lam

    def training_losses(self, image, label, iteration):
        n = label.shape[0]
        if not (self.uses_unlabeled and image.shape[0] > n):
            sup = self.supervised(self.net(image[:n]), label)
            return {"sup": sup, "loss": sup}
        mixed, target, lam = self.mix(image[n:])
        logits = self.net(torch.cat([image[:n], mixed], 0))
        sup = self.supervised(logits, label)
        unsup = torch.mean((torch.softmax(logits[n:], 1) - target) ** 2)
        losses = {"sup": sup}
        total = self.add_unsupervised(losses, sup, unsup, iteration)
        losses["lambda"] = lam.mean()
        losses["loss"] = total
        return losses

    def after_step(self, iteration: int) -> None:
        """EMA update of the teacher with ``step = iteration + 1`` optimiser steps taken."""
        self.teacher.update(self.net, iteration + 1)
