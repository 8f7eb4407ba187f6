"""``ours``: DuetNet trained with multi-modal contrastive mutual learning (Meng et al.).

Labelled crops: CE + Dice on every branch (Eq. 4). Unlabelled crops: by default each branch
learns the other branch's argmax with the same CE + Dice (cross pseudo supervision,
``method.options.consistency: cross_pseudo``); the paper's term (Eq. 5-6), each branch's
softmax pulled towards the other's detached softmax by MSE, is ``consistency: mse`` and the
``paper`` preset. On real BraTS with 2 labelled cases the MSE let both branches agree on
"background" in the unlabelled cases (their predicted tumour volume fell to almost nothing)
and lost to the labelled-only control; the Dice part of the pseudo-label loss weighs a
small pseudo-tumour like the background, and the cross-validated numbers chose it
(BENCHMARKS.md, "Why the unlabelled cases hurt"). Total ``L_sup + alpha(t) L_unsup`` with
alpha = 1 (paper) and the usual ``exp(-5(1-t)^2)`` ramp-up over ``method.rampup_fraction``
of training (0 disables it). ``method.options.mcml: false`` drops the unsupervised term
(ablation), so only labelled crops are used.

``method.options.cutmix: true`` (off by default; not in the paper) perturbs the unlabelled
crops as in cross pseudo supervision's semi-supervised recipe: the branches first predict
the unmixed unlabelled crops without gradient, unlabelled crop ``i``'s cuboid (side
``cutmix_ratio`` of the crop's) is pasted into crop ``i + 1``, and the consistency term
compares the branches' outputs on the mixed crops with those predictions mixed the same
way, so a branch must reproduce a target it predicted with the whole context from a crop
whose context was replaced. ``method.options.intensity_view: true`` (off by default; not in
the paper) perturbs the unlabelled crops' intensities instead or as well: random gamma,
brightness and noise drawn per crop and modality (:func:`duetseg.methods.perturb.random_intensity`),
targets again the predictions on the clean crops, so a branch must keep its segmentation
when a modality's appearance changes (weak-to-strong consistency as in FixMatch). Both draw
from the global torch generator (saved in checkpoints, so resuming stays exact).
``method.options.copy_paste: true`` (off by default; not in the paper) replaces the step by
bidirectional copy-paste between labelled and unlabelled crops, ground truth on the labelled
parts and cross pseudo-labels from the clean crops on the others
(:mod:`duetseg.methods.copy_paste`). ``method.options.pseudo_prior: soft`` (the default)
shifts each unlabelled crop's hard pseudo-labels by a per-crop class bias so that they keep
the source branch's own expected class volume (the sum of its softmax) rather than the
argmax's: with few labelled cases the argmax of an unsure branch shrank the tumour step
after step and one 4-labelled fold collapsed to 17 % Dice; over 12 real folds ``soft``
scored +12.7 (2 labelled) and +4.1 (4 labelled) Dice points over the labelled-only control
and +8.7 over plain cross pseudo-labels at 4 labelled (BENCHMARKS.md). ``off`` is the plain
argmax; ``cap | match`` steer a class bias towards the labelled cases' class volumes
(:mod:`duetseg.methods.prior_guard`); ``anchor`` (``anchor_cap``) holds the volume at
(below) the branches' own early estimate (:mod:`duetseg.methods.volume_anchor`). With a
soft consistency (``mse``,
``confident_teacher``) or ``copy_paste`` an unset ``pseudo_prior`` means ``off``.

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

from duetseg.methods.base import MethodContext
from duetseg.methods.copy_paste import copy_paste_losses
from duetseg.methods.dual_branch import DualBranchMethod
from duetseg.methods.losses import (
    confident_teacher_mse,
    cross_branch_mse,
    foreground_fraction,
    graph_zero,
    masked_branch_consistency,
)
from duetseg.methods.missing_distill import full_input_distillation
from duetseg.methods.mixing import cuboid_mask, cutmix_with_neighbour
from duetseg.methods.ours_options import OursOptions
from duetseg.methods.perturb import random_intensity
from duetseg.methods.prior_guard import PseudoLabelPrior, soft_volume_shift
from duetseg.methods.pseudo_label_losses import (
    confident_pseudo_supervision,
    cross_pseudo_supervision,
    foreground_cross_pseudo,
    hard_pseudo_ce,
)
from duetseg.methods.volume_anchor import VolumeAnchor
from duetseg.models.blocks import frozen_norm_statistics

__all__ = ["Ours"]


class Ours(DualBranchMethod):
    """DuetNet + supervised loss on each branch + cross-branch consistency on unlabelled crops.

    ``method.options.consistency`` chooses the unsupervised term: ``mse`` (the paper: each
    branch's softmax pulled to the other's, both ways), ``confident_teacher`` (per voxel the
    more confident branch teaches the other, :func:`confident_teacher_mse`),
    ``hard_pseudo`` (cross pseudo-labels masked at ``pseudo_threshold``,
    :func:`hard_pseudo_ce`) or ``cross_pseudo`` (unmasked cross pseudo-labels learnt with the
    supervised CE + Dice, :func:`cross_pseudo_supervision`) or ``ensemble_pseudo`` (the same,
    every branch learning the argmax of both branches' mean softmax) or ``confident_pseudo``
    (per voxel the more confident branch's argmax, learnt by the other branch only,
    :func:`confident_pseudo_supervision`) or ``foreground_pseudo`` (cross pseudo-labels
    where another branch's background never overrides the learner's own foreground,
    :func:`foreground_cross_pseudo`).

    ``method.options.cross_branch_grad: false`` passes the unlabelled crops through detached
    MMF gates (:meth:`DuetNet.forward` ``detach_gates_from``): the branches still see each
    other's features, but branch m's consistency loss updates branch m alone, as between two
    separate networks. With the gates' gradient, the two both-way terms together are the
    gradient of one joint disagreement that the shared gates can lower for both branches at
    once, e.g. by agreeing on background.
    """

    name = "ours"
    description = ("DuetNet (MMF + MAE) with multi-modal mutual learning between the branches "
                   "(the paper's method; volume-keeping cross pseudo-labels by default)")
    default_weight = 1.0

    Options = OursOptions

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.uses_unlabeled = self.options.mcml
        self.prior = None
        if self.options.pseudo_prior in ("cap", "match") and self.uses_unlabeled:
            self.prior = PseudoLabelPrior(ctx.num_classes, self.options.prior_rate,
                                          self.options.prior_max_shift,
                                          cap_only=self.options.pseudo_prior == "cap")
            self.needs_label_prior = True
        self.anchor = None
        if self.options.pseudo_prior.startswith("anchor") and self.uses_unlabeled:
            start, stop = (round(f * ctx.max_iterations) for f in self.options.anchor_window)
            self.anchor = VolumeAnchor(ctx.num_classes, start, max(stop, start + 1),
                                       self.options.prior_rate, self.options.prior_max_shift,
                                       cap_only=self.options.pseudo_prior == "anchor_cap")

    def set_label_prior(self, fractions) -> None:
        if self.prior is not None:
            self.prior.set_target(fractions)

    def consistency(self, logits: list[torch.Tensor],
                    teacher: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The unsupervised term on the unlabelled part of the branches' logits.

        Args:
            logits: the branches' logits on the unlabelled crops.
            teacher: logits the targets come from (default ``logits``; with ``cutmix``
                the predictions on the unmixed crops, mixed like the inputs).
        """
        kind = self.options.consistency
        if kind == "hard_pseudo":
            return hard_pseudo_ce(logits, self.options.pseudo_threshold, teacher)
        if kind == "confident_pseudo":
            return confident_pseudo_supervision(logits, teacher)
        if kind == "foreground_pseudo":
            return foreground_cross_pseudo(logits, teacher, self.options.erase_weight)
        if kind in ("cross_pseudo", "ensemble_pseudo"):
            return cross_pseudo_supervision(logits, self.sup_loss,
                                            include_self=kind == "ensemble_pseudo",
                                            teacher=teacher)
        probs = [torch.softmax(lg, 1) for lg in logits]
        targets = None if teacher is None else [torch.softmax(lg, 1) for lg in teacher]
        if kind == "confident_teacher":
            return confident_teacher_mse(probs, targets)
        return cross_branch_mse(probs, targets)

    def clean_predictions(self, image: torch.Tensor, n: int) -> list[torch.Tensor]:
        """The branches' logits on the clean unlabelled crops ``image[n:]``, without gradient.

        The pass runs on the whole batch, so batch norm sees the same crops as in a step
        without perturbation (a pass over the unlabelled crops alone predicted 1.2-1.5x more
        foreground in three of four real-BraTS runs, inflating the pseudo-labels;
        BENCHMARKS.md), and it leaves the running statistics as they were
        (:func:`frozen_norm_statistics`).
        """
        with torch.no_grad(), frozen_norm_statistics(self.net):
            return [lg[n:] for lg in self.net(image)]

    def strong_view(self, image: torch.Tensor, n: int, present: torch.Tensor | None
                    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """The unlabelled crops ``image[n:]`` perturbed (``cutmix``, ``intensity_view``).

        Returns:
            ``(batch with the perturbed unlabelled crops, teacher logits: the predictions
            on the clean crops, mixed like the inputs, present mask of the perturbed
            crops)``; a mixed crop keeps a branch only where both of its sources had that
            input (modality dropout). Targets from :meth:`clean_predictions`.
        """
        unlabelled = image[n:]
        teacher = self.clean_predictions(image, n)
        if self.options.cutmix:
            mask = cuboid_mask(unlabelled.shape[0], unlabelled.shape[2:],
                               self.options.cutmix_ratio, image.device)
            unlabelled, *teacher = cutmix_with_neighbour([unlabelled, *teacher], mask)
            if present is not None:
                present = present[n:] & torch.roll(present[n:], -1, 0)
        elif present is not None:
            present = present[n:]
        if self.options.intensity_view:
            unlabelled = random_intensity(unlabelled)
        return torch.cat([image[:n], unlabelled]), teacher, present

    def training_losses(self, image, label, iteration):
        n = label.shape[0]
        unsupervised = self.uses_unlabeled and image.shape[0] > n
        detach = None if self.options.cross_branch_grad or not self.uses_unlabeled else n
        present = self.present_mask()
        teacher = None
        present_u = None if present is None else present[n:]
        if unsupervised and self.options.copy_paste:
            return self.copy_paste_step(image, label, present, iteration)
        if unsupervised and (self.options.cutmix or self.options.intensity_view):
            image, teacher, present_u = self.strong_view(image, n, present)
        logits = self.net(image, detach_gates_from=detach)
        sup = self.supervised(logits, label, present)
        losses = {"sup": sup}
        total = sup
        if unsupervised:
            unlabelled = [lg[n:] for lg in logits]
            source = unlabelled if teacher is None else teacher
            if self.prior is not None:
                teacher = self.prior.shift(source)
            elif self.anchor is not None:
                teacher = self.anchor.pseudo_logits(source, iteration)
            elif self.options.pseudo_prior == "soft":
                teacher = soft_volume_shift(source)
            if present_u is None:
                unsup = self.consistency(unlabelled, teacher)
            else:
                unsup = masked_branch_consistency(self.consistency, unlabelled, present_u,
                                                  teacher)
                if self.options.missing_distill:
                    unsup = unsup + self.missing_distillation(image, n, unlabelled, present_u)
            total = self.add_unsupervised(losses, total, unsup, iteration)
            losses["pseudo_fg"] = foreground_fraction(unlabelled if teacher is None else teacher)
            if self.prior is not None:
                self.prior.update(teacher)
                losses["prior_bias"] = self.prior.bias[1:].mean()
            if self.anchor is not None:
                self.anchor.update(teacher, iteration)
                losses["prior_bias"] = self.anchor.guard.bias[1:].mean()
        losses["loss"] = total
        return losses

    def missing_distillation(self, image: torch.Tensor, n: int,
                             unlabelled: list[torch.Tensor], present_u: torch.Tensor
                             ) -> torch.Tensor:
        """The ``missing_distill`` term: the unlabelled crops that lost an input learn the
        full-input prediction (:mod:`duetseg.methods.missing_distill`); zero when the trainer
        gave no batch before dropout."""
        full = self.full_input(image)
        if full is None or bool(present_u.all()):
            return graph_zero(unlabelled)
        teacher = self.clean_predictions(full, n)
        if self.options.pseudo_prior == "soft":
            teacher = soft_volume_shift(teacher)
        return full_input_distillation(unlabelled, teacher, present_u, self.sup_loss)

    def copy_paste_step(self, image: torch.Tensor, label: torch.Tensor,
                        present: torch.Tensor | None, iteration: int
                        ) -> dict[str, torch.Tensor]:
        """The losses of a bidirectional copy-paste step (``copy_paste``)."""
        teacher = self.clean_predictions(image, label.shape[0])
        perturb = random_intensity if self.options.intensity_view else None
        sup, unsup = copy_paste_losses(self.net, image, label, teacher,
                                       self.options.copy_paste_ratio, present, perturb)
        losses = {"sup": sup}
        losses["loss"] = self.add_unsupervised(losses, sup, unsup, iteration)
        return losses
