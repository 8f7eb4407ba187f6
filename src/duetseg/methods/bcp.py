"""``bcp``: Bidirectional Copy-Paste (Bai et al., CVPR 2023) on one VNet.

One VNet (the student) reads the modalities as input channels; the teacher is its EMA
(:mod:`duetseg.methods.ema`). Training has two stages, ``P = round(pretrain_fraction x
max_iterations)`` iterations of the first:

**Stage 1, labelled pre-training** (iterations ``t < P``): labelled crop ``i``'s cuboid is
pasted into labelled crop ``i + 1 (mod n_l)``, images and labels alike, and the student gets
the project's CE + Dice (:class:`~duetseg.methods.losses.SupervisedLoss`) on the pasted crops.
The unlabelled crops of the batch are not used. After the last stage-1 step
(:meth:`BCP.after_step` with ``iteration + 1 == P``) the teacher becomes an exact copy of the
student (parameters and buffers); it is not updated before.

**Stage 2, bidirectional copy-paste** (``t >= P``): every (labelled, unlabelled) pair
``(x_l, y_l, x_u)`` gets a cuboid mask ``M`` and, with the teacher's pseudo-label
``ŷ_u = argmax teacher(x_u)`` (no gradient)::

    x_in  = x_l ⊙ M + x_u ⊙ (1 − M)      y_in  = y_l ⊙ M + ŷ_u ⊙ (1 − M)
    x_out = x_u ⊙ M + x_l ⊙ (1 − M)      y_out = ŷ_u ⊙ M + y_l ⊙ (1 − M)
    sup   = L(Q_in, y_in | M) + L(Q_out, y_out | 1 − M)         (ground-truth parts)
    unsup = L(Q_in, y_in | 1 − M) + L(Q_out, y_out | M)         (pseudo-labelled parts)
    loss  = sup + α unsup                                       α = unlabeled_weight

``Q`` are the student's logits on the mixed crops and ``L(Q, y | W) = CE_W + Dice_W`` is the
loss on the voxels of part ``W`` (:func:`part_loss`): the voxel-weighted mean CE
(:func:`weighted_cross_entropy`) and a voxel-weighted soft Dice (:func:`weighted_dice_loss`)
with weights ``W``. Interpretation choices:

- Loss weighting: the paper's ``L_seg(Q, Y) ⊙ M + α L_seg(Q, Y) ⊙ (1 − M)`` is read as
  weight 1 on the part from the labelled crop and α on the pseudo-labelled part, each part's
  CE + Dice computed on that part's voxels only. A single Dice weighted by the map
  ``M + α (1 − M)`` was not used: a Dice ratio does not split into the two parts, so the
  project's convention ``loss = sup + unsup_weight x unsup`` could not hold. α is constant
  (the paper has no ramp-up): ``method.consistency_weight`` and ``rampup_fraction`` are not
  used. ``unsup_weight`` is logged as α in stage 2 and 0 in stage 1 (``unsup`` is 0 there).
- Masks: one cuboid per pair, side ``floor(mask_ratio x side)`` (at least 1) along each
  axis, at a uniform random position, drawn with ``torch.randint`` from the global generator
  (reproducible and resumable from a checkpoint's RNG state).
- Pairing: ``max(n_l, n_u)`` pairs, pair ``k`` = labelled ``k mod n_l`` with unlabelled
  ``k mod n_u`` (index by index with the usual equal halves). A batch without unlabelled
  crops gets the stage-1 loss. ``uses_unlabeled`` stays True in both stages.
- The student runs once on ``[x_in; x_out]``; the unmixed labelled crops are not used in
  stage 2. The teacher runs in the method's train/eval mode (see :mod:`~duetseg.methods.ema`);
  pseudo-labels are the raw argmax (no connected-component filtering).
- EMA in stage 2: :meth:`EMATeacher.update` with ``step = iteration + 1 − P`` (steps since
  the switch), so the decay ramps ``min(1 − 1/(step + 1), ema_decay)`` from the copy.
- One run: the optimiser and the trainer's learning-rate schedule continue across the
  switch (the paper trains the two stages as separate runs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import Field

from duetseg.config import StrictModel
from duetseg.methods.base import MethodContext
from duetseg.methods.ema import EMATeacher
from duetseg.methods.losses import class_argmax
from duetseg.methods.mixing import cuboid_mask, cutmix_with_neighbour, paste
from duetseg.methods.single import SingleNetworkMethod

__all__ = ["BCP", "cuboid_mask", "paste", "bidirectional_mix", "pair_indices",
           "weighted_cross_entropy", "weighted_dice_loss", "part_loss"]


def bidirectional_mix(x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor,
                      y_u: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The two mixed inputs and targets of paired crops.

    Args:
        x_l, y_l: labelled crops ``(n, K, *spatial)`` and their labels ``(n, *spatial)``.
        x_u, y_u: unlabelled crops and their pseudo-labels, same shapes.
        mask: ``(n, *spatial)`` bool cuboid masks ``M``.

    Returns:
        ``(x_in, x_out, y_in, y_out)``: ``in`` has the labelled crop inside the cuboid,
        ``out`` the unlabelled one.
    """
    return (paste(x_l, x_u, mask), paste(x_u, x_l, mask),
            paste(y_l, y_u, mask), paste(y_u, y_l, mask))


def pair_indices(n_labeled: int, n_unlabeled: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair ``k`` of ``max(n_l, n_u)``: labelled ``k mod n_l`` with unlabelled ``k mod n_u``."""
    k = torch.arange(max(n_labeled, n_unlabeled))
    return k % n_labeled, k % n_unlabeled


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                           weight: torch.Tensor) -> torch.Tensor:
    """Voxel-weighted mean cross-entropy ``Σ w·ce / Σ w`` (0 when all weights are 0).

    Args:
        logits: ``(B, C, *spatial)``.
        target: ``(B, *spatial)`` class indices.
        weight: ``(B, *spatial)`` non-negative voxel weights; all ones gives
            ``F.cross_entropy(logits, target)``, a 0/1 map the mean CE over its voxels.
    """
    ce = F.cross_entropy(logits.float(), target, reduction="none")
    w = weight.to(ce.dtype)
    return (w * ce).sum() / w.sum().clamp_min(1e-8)


def weighted_dice_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                       smooth: float = 1e-5) -> torch.Tensor:
    """Soft Dice loss whose sums run over voxels weighted by ``weight``.

    Per class ``c``: ``1 − (2 Σ w p_c g_c + s) / (Σ w p_c + Σ w g_c + s)``, the sums over the
    batch and all voxels, ``p = softmax(logits)``, ``g`` one-hot ``target``; the mean over the
    classes other than background. With all weights 1 this is ``monai.losses.DiceLoss(
    to_onehot_y=True, softmax=True, include_background=False, batch=True)`` as in
    :class:`~duetseg.methods.losses.SupervisedLoss` (``s`` = its smoothing); a 0/1 map gives
    the Dice of the prediction on that part only.

    Args:
        logits: ``(B, C, *spatial)`` with ``C >= 2``.
        target: ``(B, *spatial)`` class indices.
        weight: ``(B, *spatial)`` non-negative voxel weights.
        smooth: added to numerator and denominator.
    """
    probs = torch.softmax(logits.float(), 1)
    onehot = F.one_hot(target, probs.shape[1]).movedim(-1, 1).to(probs.dtype)
    w = weight.unsqueeze(1).to(probs.dtype)
    dims = [0, *range(2, probs.dim())]
    intersection = (w * probs * onehot).sum(dims)
    denominator = (w * probs).sum(dims) + (w * onehot).sum(dims)
    dice = 1.0 - (2.0 * intersection + smooth) / (denominator + smooth)
    return dice[1:].mean()


def part_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CE + Dice on the voxels weighted by ``weight`` (a 0/1 map: one part of a mixed crop)."""
    return weighted_cross_entropy(logits, target, weight) + weighted_dice_loss(
        logits, target, weight)


class BCP(SingleNetworkMethod):
    """Labelled copy-paste pre-training, then bidirectional labelled/unlabelled copy-paste."""

    name = "bcp"
    table_order = 8
    description = ("BCP: bidirectional copy-paste of labelled/unlabelled cuboids with "
                   "EMA-teacher pseudo-labels, after labelled copy-paste pre-training (one VNet)")

    class Options(StrictModel):
        """BCP options.

        Attributes:
            pretrain_fraction: fraction of ``max_iterations`` spent in stage 1.
            mask_ratio: cuboid side / crop side along each axis.
            unlabeled_weight: α, weight of the pseudo-labelled parts.
            ema_decay: ceiling of the EMA decay.
        """

        pretrain_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
        mask_ratio: float = Field(default=2.0 / 3.0, gt=0.0, le=1.0)
        unlabeled_weight: float = Field(default=0.5, ge=0.0)
        ema_decay: float = Field(default=0.99, ge=0.0, le=1.0)

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.teacher = EMATeacher(self.net, self.options.ema_decay)
        self.pretrain_iterations = int(round(self.options.pretrain_fraction * ctx.max_iterations))

    def draw_mask(self, n: int, shape: Sequence[int], device: torch.device) -> torch.Tensor:
        """``n`` cuboid masks of ``mask_ratio`` for crops of spatial ``shape``."""
        return cuboid_mask(n, shape, self.options.mask_ratio, device)

    def labeled_copy_paste(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Stage-1 loss: crop ``i``'s cuboid pasted into crop ``i + 1``; CE + Dice."""
        mask = self.draw_mask(label.shape[0], label.shape[1:], label.device)
        mixed, target = cutmix_with_neighbour([image, label], mask)
        return self.sup_loss(self.net(mixed), target)

    def training_losses(self, image, label, iteration):
        n = label.shape[0]
        if iteration < self.pretrain_iterations or image.shape[0] <= n:
            sup = self.labeled_copy_paste(image[:n], label)
            return {"sup": sup, "unsup": sup.new_zeros(()), "unsup_weight": torch.tensor(0.0),
                    "loss": sup}
        unlabeled = image[n:]
        with torch.no_grad():
            pseudo = class_argmax(self.teacher(unlabeled))
        li, ui = pair_indices(n, unlabeled.shape[0])
        li, ui = li.to(image.device), ui.to(image.device)
        mask = self.draw_mask(li.shape[0], label.shape[1:], image.device)
        x_in, x_out, y_in, y_out = bidirectional_mix(image[li], label[li], unlabeled[ui],
                                                     pseudo[ui], mask)
        q_in, q_out = self.net(torch.cat([x_in, x_out], 0)).split(li.shape[0])
        m = mask.float()
        sup = part_loss(q_in, y_in, m) + part_loss(q_out, y_out, 1.0 - m)
        unsup = part_loss(q_in, y_in, 1.0 - m) + part_loss(q_out, y_out, m)
        alpha = self.options.unlabeled_weight
        return {"sup": sup, "unsup": unsup, "unsup_weight": torch.tensor(alpha),
                "loss": sup + alpha * unsup}

    def after_step(self, iteration: int) -> None:
        """Copy the student into the teacher after stage 1; EMA updates in stage 2."""
        done = iteration + 1
        if done == self.pretrain_iterations:
            self.teacher.model.load_state_dict(self.net.state_dict())
        elif done > self.pretrain_iterations:
            self.teacher.update(self.net, done - self.pretrain_iterations)
