"""``urpc``: uncertainty-rectified pyramid consistency (Luo et al.) on concatenated modalities.

Network: :class:`~duetseg.models.multihead.MultiScaleVNet`, a VNet whose decoder also predicts
at 1/8, 1/4 and 1/2 resolution (1×1×1 heads after ``Dropout3d``, logits up-sampled trilinearly
to full size), giving ``S = 4`` outputs ``p_s = softmax(z_s)``.

Labelled crops: ``L_sup = (1/S) Σ_s [CE(z_s, y) + Dice(z_s, y)]`` (the project's
``SupervisedLoss`` on every scale, averaged).

Unlabelled crops (the last ``B - labeled_bs`` items):

- ``p̄ = (1/S) Σ_s p_s`` (computed in log space: ``log p̄ = logsumexp_s log p_s - log S``);
- per scale and voxel ``v_s = KL(p̄ ‖ p_s) = Σ_c p̄_c (log p̄_c - log p_s,c)`` (direction as in
  REFERENCE.md: the mean prediction is the first argument);
- ``L_s = mean((p̄ - p_s)² · e^(-v_s)) / (mean(e^(-v_s)) + 1e-8) + mean(v_s)``, the first mean over
  batch, classes and voxels, the others over batch and voxels;
- ``L_unsup = (1/S) Σ_s L_s``; total ``L_sup + w(t) L_unsup`` with ``w = 0.1`` and the
  ``exp(-5(1-t)²)`` ramp over the whole run (L = 400 of 60k/150 → fraction 1.0).

Gradient choices (documented because the method description leaves them open): nothing is
detached by default, as in SSL4MIS-style code: gradients flow through ``p̄`` (so every scale is
also pulled by being part of the target), through the uncertainty weight ``e^(-v)`` and through
the regulariser ``mean(v)`` (which is what makes the scales agree where they are uncertain).
``method.options.detach_uncertainty: true`` makes the weight ``e^(-v)`` a constant; the
regulariser ``mean(v)`` always keeps its gradient (without it the term would do nothing).

Inference uses the full-resolution head only (output ``prediction``).
"""

from __future__ import annotations

import math

import torch

from duetseg.config import StrictModel
from duetseg.methods.base import Method, MethodContext
from duetseg.methods.losses import SupervisedLoss
from duetseg.methods.networks import backbone_args
from duetseg.models.multihead import MultiScaleVNet

__all__ = ["URPC", "kl_divergence_map", "pyramid_consistency"]


def kl_divergence_map(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Voxel-wise ``KL(p ‖ q) = Σ_c p_c (log p_c - log q_c)`` over the class dimension.

    Args:
        log_p: log-probabilities ``(B, C, ...)`` of the first argument.
        log_q: log-probabilities of the second argument, same shape.

    Returns:
        ``(B, 1, ...)`` non-negative divergence map.
    """
    return torch.sum(log_p.exp() * (log_p - log_q), dim=1, keepdim=True)


def pyramid_consistency(
    logits: list[torch.Tensor], detach_uncertainty: bool = False
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Uncertainty-rectified consistency of several predictions of the same crops.

    Args:
        logits: ``S`` logits ``(B, C, X, Y, Z)`` of the same size (one per scale).
        detach_uncertainty: treat the weight ``e^(-v)`` as a constant.

    Returns:
        ``(loss, stats)``: the scale-averaged loss (see the module docstring) and detached
        scalars ``"kl"`` (mean ``v`` over scales) for logging.

    Raises:
        ValueError: fewer than two outputs.
    """
    if len(logits) < 2:
        raise ValueError(f"pyramid consistency needs at least 2 outputs, got {len(logits)}")
    log_probs = [torch.log_softmax(z, dim=1) for z in logits]
    log_mean = torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))
    mean_prob = log_mean.exp()
    total = logits[0].new_zeros(())
    kl_total = logits[0].new_zeros(())
    for log_p in log_probs:
        v = kl_divergence_map(log_mean, log_p)
        weight = torch.exp(-v)
        if detach_uncertainty:
            weight = weight.detach()
        squared = (mean_prob - log_p.exp()) ** 2
        total = total + torch.mean(squared * weight) / (torch.mean(weight) + 1e-8) + torch.mean(v)
        kl_total = kl_total + torch.mean(v).detach()
    n = len(log_probs)
    return total / n, {"kl": kl_total / n}


class URPC(Method):
    """Multi-scale VNet; CE + Dice on every scale; uncertainty-rectified pyramid consistency."""

    name = "urpc"
    table_order = 4
    description = "URPC: deep-supervision pyramid consistency rectified by KL uncertainty"
    default_weight = 0.1
    default_rampup_fraction = 1.0

    class Options(StrictModel):
        """``detach_uncertainty``: no gradient through the weight ``e^(-v)``."""

        detach_uncertainty: bool = False

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.net = MultiScaleVNet(self.num_modalities, ctx.num_classes,
                                  **backbone_args(ctx.model))
        self.sup_loss = SupervisedLoss()
        self.primary_output = "prediction"

    def training_losses(self, image, label, iteration):
        """CE + Dice on every scale (labelled) + weighted pyramid consistency (unlabelled).

        Args:
            image: ``(B, K, X, Y, Z)``; the first ``label.shape[0]`` items are labelled.
            label: ``(labeled_bs, X, Y, Z)`` class indices.
            iteration: current iteration (for the ramp-up).

        Returns:
            ``"loss"``, ``"sup"`` and, with unlabelled crops, ``"unsup"``, ``"unsup_weight"``
            and ``"kl"``.
        """
        n = label.shape[0]
        outputs = self.net(image)
        sup = sum(self.sup_loss(z[:n], label) for z in outputs) / len(outputs)
        losses = {"sup": sup}
        total = sup
        if image.shape[0] > n:
            unsup, stats = pyramid_consistency([z[n:] for z in outputs],
                                               self.options.detach_uncertainty)
            total = self.add_unsupervised(losses, total, unsup, iteration)
            losses.update(stats)
        losses["loss"] = total
        return losses

    def output_probabilities(self, image):
        """Softmax of the full-resolution head only.

        Args:
            image: ``(B, K, X, Y, Z)``.

        Returns:
            ``{"prediction": (B, C, X, Y, Z)}``.
        """
        return {"prediction": torch.softmax(self.net.segment(image), 1)}

    def describe_outputs(self):
        mods = " + ".join(self.ctx.modalities)
        return {"prediction": f"full-resolution head of a multi-scale VNet on {mods} as channels"}
