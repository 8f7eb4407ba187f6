"""``mlrpl``: mutual learning with reliable pseudo labels (Su et al., MedIA 2024).

Network: :class:`~duetseg.models.multihead.DualDecoderVNet`, one shared VNet encoder on the
concatenated modalities and two decoders (1: transposed-conv up-sampling, 2: trilinear
interpolation + conv). Each returns logits ``z_i`` (``p_i = softmax(z_i)``) and its last
feature map ``f_i`` (full-resolution decoder feature before the head).

Labelled crops: ``L_sup = (1/2) Σ_i Dice(z_i, y)``, Dice only (as REFERENCE.md says), via MONAI
``DiceLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)``: foreground
classes only; ``batch=True`` (Dice over the whole labelled batch, as the project's
``SupervisedLoss`` does) keeps a crop without foreground from giving an undefined term. The
mean over decoders equals the release's ``0.5 · Σ_i Dice``. ``method.options.supervised:
ce_dice`` adds cross-entropy (``Dice + CE`` per decoder, the project's usual supervised loss).
Known consequence of Dice only: with the unsupervised weight at full strength from the first
iteration (no ramp-up), the hard pseudo-label cross-entropy dominates the weak early Dice
gradient and both decoders drift to background; the default ramp-up (L = 40) is what keeps
early training supervised, as in the release.

Pseudo-label loss of decoder ``i`` taught by decoder ``j`` (``j = 1 - i``), per crop:

- ``H(p) = -Σ_c p_c log p_c``; ``mask = [H(p_i) > H(p_j)]`` (``j`` strictly more confident);
- ``ŷ_j = argmax_c p_j``;
- prototypes, per crop ``b`` and class ``c``: ``π_bc = normalize(Σ_{x: ŷ_j(x) = c} f_j(x) /
  (#{x: ŷ_j(x) = c} + 1e-6))`` (L2). A class absent from ``ŷ_j`` in that crop has a zero
  prototype (``F.normalize`` keeps the zero vector), so its similarity is 0 everywhere: finite,
  and it simply contributes ``p_j,c²`` to the disagreement below;
- ``sim_c(x) = <f_j(x)/‖f_j(x)‖, π_bc>`` (cosine; a zero feature vector gives 0);
- ``r = max(0, 1 - (1/C) Σ_c (sim_c - p_j,c)²) · mask`` computed without gradient (the clamp
  never acts for ReLU features, whose cosines lie in [0, 1]; it only guards the sign);
- ``L_{i←j} = Σ_x CE(z_i(x), ŷ_j(x)) · r(x) / (Σ_x mask(x) + 1e-6)`` summed over the crops of
  the batch; cross-entropy on the logits ``z_i`` (the public release passes softmax
  probabilities to ``CrossEntropyLoss``; we use logits, the standard form).

``L_unsup = L_{1←2} + L_{2←1}``; only ``z_i`` receives gradient from ``L_{i←j}``. By default it is
computed on the unlabelled crops only (like the project's other methods);
``method.options.all_crops: true`` uses the whole batch (the release does). Total
``L_sup + w(t) L_unsup`` with ``w = 1`` and the ``exp(-5(1-t)²)`` ramp over 10 % of training
(L = 40 with t = iteration // 150 at 60k iterations).

Outputs: ``prediction`` = decoder 1 (primary), ``mean_decoders`` = mean of both softmaxes.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from duetseg.config import StrictModel
from duetseg.methods.base import Method, MethodContext
from duetseg.methods.losses import class_argmax
from duetseg.methods.networks import backbone_args
from duetseg.models.multihead import DualDecoderVNet

__all__ = ["MLRPL", "entropy_map", "class_prototypes", "reliability", "reliable_pseudo_label_loss"]


def entropy_map(prob: torch.Tensor) -> torch.Tensor:
    """Voxel-wise Shannon entropy ``-Σ_c p_c log p_c``.

    Args:
        prob: probabilities ``(B, C, ...)``.

    Returns:
        ``(B, ...)`` entropy (nats).
    """
    return -torch.sum(prob * torch.log(prob.clamp_min(1e-12)), dim=1)


def class_prototypes(
    features: torch.Tensor, pseudo: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Per-crop, per-class mean feature over the voxels of each pseudo-label class, L2-normalised.

    Args:
        features: ``(B, F, X, Y, Z)``.
        pseudo: ``(B, X, Y, Z)`` class indices.
        num_classes: number of classes ``C``.

    Returns:
        ``(B, C, F)`` unit vectors; zero vectors for classes absent from a crop.
    """
    onehot = F.one_hot(pseudo, num_classes).flatten(1, -2).to(features.dtype)  # (B, N, C)
    flat = features.flatten(2)  # (B, F, N)
    sums = torch.bmm(flat, onehot).transpose(1, 2)  # (B, C, F)
    counts = onehot.sum(1).unsqueeze(-1)  # (B, C, 1)
    return F.normalize(sums / (counts + 1e-6), dim=-1)


@torch.no_grad()
def reliability(
    prob_student: torch.Tensor, prob_teacher: torch.Tensor, feat_teacher: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reliability weight of the teacher's pseudo label for the student (no gradient).

    Args:
        prob_student: ``p_i`` ``(B, C, X, Y, Z)``.
        prob_teacher: ``p_j``, same shape.
        feat_teacher: ``f_j`` ``(B, F, X, Y, Z)``.

    Returns:
        ``(r, mask)``, both ``(B, X, Y, Z)``: the weight ``r`` and the float mask where the
        teacher is strictly more confident (lower entropy).
    """
    mask = (entropy_map(prob_student) > entropy_map(prob_teacher)).to(prob_teacher.dtype)
    pseudo = class_argmax(prob_teacher)
    protos = class_prototypes(feat_teacher, pseudo, prob_teacher.shape[1])
    unit = F.normalize(feat_teacher, dim=1)
    sim = torch.einsum("bf...,bcf->bc...", unit, protos)
    agreement = 1.0 - torch.mean((sim - prob_teacher) ** 2, dim=1)
    return agreement.clamp_min(0.0) * mask, mask


def reliable_pseudo_label_loss(
    logits_student: torch.Tensor, logits_teacher: torch.Tensor, feat_teacher: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``L_{i←j}``: reliability-weighted CE of the student on the teacher's hard pseudo label.

    Args:
        logits_student: ``z_i`` ``(B, C, X, Y, Z)``.
        logits_teacher: ``z_j``, same shape (no gradient reaches it).
        feat_teacher: ``f_j`` ``(B, F, X, Y, Z)`` (no gradient reaches it).

    Returns:
        ``(loss, mean_reliability)``: the scalar loss and the detached mean of ``r`` over the
        voxels where the teacher is more confident (0 when there are none).
    """
    prob_teacher = torch.softmax(logits_teacher.detach(), 1)
    prob_student = torch.softmax(logits_student.detach(), 1)
    r, mask = reliability(prob_student, prob_teacher, feat_teacher.detach())
    ce = F.cross_entropy(logits_student, class_argmax(prob_teacher), reduction="none")
    count = torch.sum(mask) + 1e-6
    return torch.sum(ce * r) / count, torch.sum(r) / count


class MLRPL(Method):
    """Shared encoder, two decoders taught by each other's reliable pseudo labels."""

    name = "mlrpl"
    table_order = 5
    description = "MLRPL: two decoders, mutual learning with prototype-reliability pseudo labels"
    default_weight = 1.0
    default_rampup_fraction = 0.1

    class Options(StrictModel):
        """``all_crops``: pseudo-label loss on labelled crops too (as the release does);
        ``supervised``: ``dice`` (REFERENCE.md) or ``ce_dice`` (adds cross-entropy)."""

        all_crops: bool = False
        supervised: Literal["dice", "ce_dice"] = "dice"

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.net = DualDecoderVNet(self.num_modalities, ctx.num_classes,
                                   **backbone_args(ctx.model))
        self.dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
        self.primary_output = "prediction"

    def training_losses(self, image, label, iteration):
        """Dice on both decoders (labelled) + mutual reliable pseudo-label loss.

        Args:
            image: ``(B, K, X, Y, Z)``; the first ``label.shape[0]`` items are labelled.
            label: ``(labeled_bs, X, Y, Z)`` class indices.
            iteration: current iteration (for the ramp-up).

        Returns:
            ``"loss"``, ``"sup"`` and, when the pseudo-label loss applies, ``"unsup"``,
            ``"unsup_weight"`` and ``"reliability"`` (mean ``r`` where taught, both directions).
        """
        n = label.shape[0]
        logits, features = self.net(image)
        target = label.unsqueeze(1)
        sup = sum(self.dice(z[:n], target) for z in logits) / len(logits)
        if self.options.supervised == "ce_dice":
            sup = sup + sum(F.cross_entropy(z[:n], label) for z in logits) / len(logits)
        losses = {"sup": sup}
        total = sup
        start = 0 if self.options.all_crops else n
        if image.shape[0] > start:
            unsup = sup.new_zeros(())
            mean_r = sup.new_zeros(())
            for i, j in ((0, 1), (1, 0)):
                term, rel = reliable_pseudo_label_loss(logits[i][start:], logits[j][start:],
                                                        features[j][start:])
                unsup = unsup + term
                mean_r = mean_r + rel / 2
            total = self.add_unsupervised(losses, total, unsup, iteration)
            losses["reliability"] = mean_r
        losses["loss"] = total
        return losses

    def output_probabilities(self, image):
        """Decoder 1's softmax and the mean of both decoders' softmaxes.

        Args:
            image: ``(B, K, X, Y, Z)``.

        Returns:
            ``{"prediction": p_1, "mean_decoders": (p_1 + p_2) / 2}``.
        """
        logits, _ = self.net(image)
        p1, p2 = (torch.softmax(z, 1) for z in logits)
        return {"prediction": p1, "mean_decoders": (p1 + p2) / 2}

    def describe_outputs(self):
        mods = " + ".join(self.ctx.modalities)
        return {"prediction": f"decoder 1 (transposed-conv up) of a two-decoder VNet on {mods}",
                "mean_decoders": "mean of the two decoders' softmax"}
