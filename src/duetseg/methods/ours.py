"""``ours``: DuetNet trained with multi-modal contrastive mutual learning (Meng et al.).

Labelled crops: CE + Dice on every branch (Eq. 4). Unlabelled crops: by default each branch
learns the other branch's pseudo-labels with the same CE + Dice (cross pseudo supervision,
``method.options.consistency: cross_pseudo``). The pseudo-labels are not the plain argmax:
each crop's logits get a class bias so that the pseudo-labelled volume equals the source
branch's expected volume there, the sum of its softmax (``pseudo_prior: soft``,
:func:`duetseg.methods.soft_volume.soft_volume_shift`); with the plain argmax (``off``) an
unsure branch's tumour shrank step after step on real data. The paper's term (Eq. 5-6),
each branch's softmax pulled towards the other's detached softmax by MSE, is
``consistency: mse`` and the ``paper`` preset; on real BraTS with 2 labelled cases it let
both branches agree on "background" in the unlabelled cases. Total
``L_sup + alpha(t) L_unsup`` with alpha = 1 (paper) and the usual ``exp(-5(1-t)^2)`` ramp-up
over ``method.rampup_fraction`` of training (0 disables it). ``method.options.mcml: false``
drops the unsupervised term (ablation), so only labelled crops are used.

Modality dropout (``train.modality_dropout``): a branch whose input was zeroed in a crop gets
no supervised loss on that crop (batch Dice over the crops where it is present) and takes
no part in that crop's consistency term, which only compares the present branches and is
zero when fewer than two are (:func:`masked_branch_supervised`,
:func:`masked_branch_consistency`). The zeroed branch still runs and its features still
enter the MMF gates (see :mod:`duetseg.models.duetnet`). With ``missing_distill`` an
unlabelled crop that lost an input teaches its present branches the prediction on the same
crop with every input (:mod:`duetseg.methods.missing_distill`).
"""

from __future__ import annotations

import torch

from duetseg.config import Config
from duetseg.methods.base import MethodContext
from duetseg.methods.dual_branch import DualBranchMethod, duetnet_switches
from duetseg.methods.losses import (
    cross_branch_mse,
    foreground_fraction,
    graph_zero,
    masked_branch_consistency,
)
from duetseg.methods.missing_distill import full_input_distillation
from duetseg.methods.ours_options import OursOptions
from duetseg.methods.pseudo_label_losses import cross_pseudo_supervision
from duetseg.methods.soft_volume import soft_volume_shift
from duetseg.models.blocks import frozen_norm_statistics

__all__ = ["Ours"]


class Ours(DualBranchMethod):
    """DuetNet + supervised loss on each branch + cross-branch consistency on unlabelled crops.

    ``method.options.consistency`` chooses the unsupervised term: ``cross_pseudo`` (the
    default: each branch learns the other's volume-kept pseudo-labels with the supervised
    CE + Dice, :func:`cross_pseudo_supervision`) or ``mse`` (the paper: each branch's softmax
    pulled to the other's, both ways, :func:`cross_branch_mse`).
    """

    name = "ours"
    description = ("DuetNet (MMF + MAE) with multi-modal mutual learning between the branches "
                   "(the paper's method; volume-keeping cross pseudo-labels by default)")
    default_weight = 1.0
    role = "proposed"
    ablation_switches = ("mmf", "mae", "mcml")

    Options = OursOptions

    @classmethod
    def ablation_flags(cls, config: Config) -> dict[str, bool]:
        """MMF and MAE from the model settings; MCML on unless ``method.options.mcml`` is
        false or the unsupervised weight is 0 (the labelled-only control)."""
        mcml = config.method.options.get("mcml", OursOptions.model_fields["mcml"].default)
        return {**duetnet_switches(config),
                "mcml": bool(mcml) and config.method.consistency_weight != 0}

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.uses_unlabeled = self.options.mcml

    def pseudo_targets(self, logits: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """The logits the pseudo-labels come from (None: the branches' own logits)."""
        return soft_volume_shift(logits) if self.options.pseudo_prior == "soft" else None

    def consistency(self, logits: list[torch.Tensor],
                    teacher: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The unsupervised term on the unlabelled part of the branches' logits.

        Args:
            logits: the branches' logits on the unlabelled crops.
            teacher: logits the targets come from (default ``logits``).
        """
        if self.options.consistency == "cross_pseudo":
            return cross_pseudo_supervision(logits, self.sup_loss, teacher=teacher)
        probs = [torch.softmax(lg, 1) for lg in logits]
        targets = None if teacher is None else [torch.softmax(lg, 1) for lg in teacher]
        return cross_branch_mse(probs, targets)

    def training_losses(self, image, label, iteration):
        n = label.shape[0]
        unsupervised = self.uses_unlabeled and image.shape[0] > n
        present = self.present_mask()
        logits = self.net(image)
        sup = self.supervised(logits, label, present)
        losses = {"sup": sup}
        total = sup
        if unsupervised:
            unlabelled = [lg[n:] for lg in logits]
            teacher = self.pseudo_targets(unlabelled)
            if present is None:
                unsup = self.consistency(unlabelled, teacher)
            else:
                present_u = present[n:]
                unsup = masked_branch_consistency(self.consistency, unlabelled, present_u,
                                                  teacher)
                if self.options.missing_distill:
                    unsup = unsup + self.missing_distillation(image, n, unlabelled, present_u)
            total = self.add_unsupervised(losses, total, unsup, iteration)
            losses["pseudo_fg"] = foreground_fraction(unlabelled if teacher is None else teacher)
        losses["loss"] = total
        return losses

    def missing_distillation(self, image: torch.Tensor, n: int,
                             unlabelled: list[torch.Tensor], present_u: torch.Tensor
                             ) -> torch.Tensor:
        """The ``missing_distill`` term: the unlabelled crops that lost an input learn the
        full-input prediction (:mod:`duetseg.methods.missing_distill`); zero when the trainer
        gave no batch before dropout.

        The full-input pass runs on the whole batch, so batch norm sees the same crops as
        in the step itself, and leaves the running statistics as they were
        (:func:`frozen_norm_statistics`).
        """
        full = self.full_input(image)
        if full is None or bool(present_u.all()):
            return graph_zero(unlabelled)
        with torch.no_grad(), frozen_norm_statistics(self.net):
            teacher = [lg[n:] for lg in self.net(full)]
        shifted = self.pseudo_targets(teacher)
        return full_input_distillation(unlabelled, teacher if shifted is None else shifted,
                                       present_u, self.sup_loss)
