"""``ours``: DuetNet trained with multi-modal contrastive mutual learning (Meng et al.).

Labelled crops: CE + Dice on every branch (Eq. 4). Unlabelled crops: each branch's softmax is
pulled towards the other branch's detached softmax by MSE (Eq. 5-6). Total
``L_sup + alpha(t) L_unsup`` with alpha = 1 (paper) and the usual ``exp(-5(1-t)^2)`` ramp-up
over ``method.rampup_fraction`` of training (0 disables it). ``method.mcml: false`` drops the
unsupervised term (ablation), so only labelled crops are used.
"""

from __future__ import annotations

import torch

from duetseg.methods.base import Method, MethodContext
from duetseg.methods.losses import SupervisedLoss, cross_branch_mse
from duetseg.models import DuetNet, ensemble_probabilities

__all__ = ["BRANCH_NAMES", "BranchOutputs", "DualBranchMethod", "Ours"]

BRANCH_NAMES = "abcdefghijklmnopqrstuvwxyz"


class BranchOutputs:
    """Outputs of a network returning one logits tensor per modality branch.

    Mixed into methods whose ``self.net(image)`` returns a list of K logits: reports each
    branch (``branch_a``, ``branch_b``, ...) and their ``ensemble`` (mean softmax).
    """

    def branch_names(self) -> list[str]:
        return [f"branch_{BRANCH_NAMES[m]}" for m in range(self.num_modalities)]

    def output_probabilities(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(image)
        out = {name: torch.softmax(lg, 1) for name, lg in zip(self.branch_names(), logits)}
        out["ensemble"] = ensemble_probabilities(logits)
        return out


class DualBranchMethod(BranchOutputs, Method):
    """Shared part of methods built on DuetNet: outputs per branch and the ensemble."""

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.net = DuetNet(self.num_modalities, ctx.num_classes, ctx.model)
        self.sup_loss = SupervisedLoss()
        self.primary_output = "ensemble"

    def supervised(self, logits: list[torch.Tensor], label: torch.Tensor) -> torch.Tensor:
        n = label.shape[0]
        return sum(self.sup_loss(lg[:n], label) for lg in logits)

    def describe_outputs(self) -> dict[str, str]:
        desc = {name: f"branch reading {mod}"
                for name, mod in zip(self.branch_names(), self.ctx.modalities)}
        desc["ensemble"] = "mean of the branches' softmax"
        return desc


class Ours(DualBranchMethod):
    """DuetNet + supervised loss on each branch + cross-branch MSE on unlabelled crops."""

    name = "ours"
    description = "DuetNet (MMF + MAE) with multi-modal contrastive mutual learning (the paper)"
    default_weight = 1.0

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.uses_unlabeled = ctx.method.mcml

    def training_losses(self, image, label, iteration):
        logits = self.net(image)
        sup = self.supervised(logits, label)
        losses = {"sup": sup}
        total = sup
        n = label.shape[0]
        if self.uses_unlabeled and image.shape[0] > n:
            probs = [torch.softmax(lg[n:], 1) for lg in logits]
            total = self.add_unsupervised(losses, total, cross_branch_mse(probs), iteration)
        losses["loss"] = total
        return losses
