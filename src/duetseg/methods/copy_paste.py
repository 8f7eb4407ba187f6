"""Bidirectional copy-paste for the branches of ``ours`` (``method.options.copy_paste``).

Bidirectional copy-paste (BCP, Bai et al., CVPR 2023; the single-network baseline is
:mod:`duetseg.methods.bcp`) carried over to cross pseudo supervision. Each labelled crop is
paired with an unlabelled one and they exchange a cuboid both ways::

    x_in  = x_l ⊙ M + x_u ⊙ (1 − M)        x_out = x_u ⊙ M + x_l ⊙ (1 − M)

so every crop the network trains on holds ground-truth voxels and unlabelled voxels side by
side, and the labelled and unlabelled crops no longer form two populations the network can
tell apart. Branch ``m``'s target on the unlabelled part is the cross pseudo-label: the
argmax of the other branches' mean softmax on the *clean*, unmixed unlabelled crop (the
teacher pass of ``ours``); on the labelled part it is the ground truth. Both parts are
learnt with CE + Dice restricted to their voxels (:func:`~duetseg.methods.bcp.part_loss`):
the labelled parts make the supervised term, the pseudo-labelled parts the unsupervised one
(weighted by ``ours``' ramped-up α). Why: with two labelled cases every pseudo-label method
measured on real BraTS drifted, growing or shrinking the tumour on the unlabelled cases
(BENCHMARKS.md); pasting ground truth into every unlabelled crop anchors the pseudo-labels
to labelled anatomy in the same crop, which is BCP's argument.
Measured on real BraTS with two labelled cases (two folds, 10 test cases): 19.9 Dice points
below the default and 9.7 below the labelled-only control (BENCHMARKS.md), so it is off: the
mixed crops replace the unmixed labelled ones, and two labelled cases cannot spare that.

Modality dropout: a mixed crop keeps branch ``m``'s input only where both of its sources
had it; a branch absent from a mixed crop gets no loss on that crop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from duetseg.methods.bcp import pair_indices, part_loss
from duetseg.methods.mixing import cuboid_mask, paste
from duetseg.methods.pseudo_label_losses import cross_targets

__all__ = ["copy_paste_losses"]


def copy_paste_losses(net: Callable[[torch.Tensor], list[torch.Tensor]], image: torch.Tensor,
                      label: torch.Tensor, teacher: list[torch.Tensor], mask_ratio: float,
                      present: torch.Tensor | None = None,
                      perturb: Callable[[torch.Tensor], torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Supervised and unsupervised loss of one bidirectional copy-paste step.

    Args:
        net: the multi-branch network, ``image -> list of branch logits``.
        image: ``(B, K, *spatial)``; the first ``label.shape[0]`` crops are labelled.
        label: ``(n, *spatial)`` class indices of the labelled crops.
        teacher: each branch's logits on the clean unlabelled crops ``image[n:]``.
        mask_ratio: cuboid side / crop side along each axis.
        present: bool ``(B, K)`` inputs present (modality dropout); None = all present.
        perturb: applied to the unlabelled crops before mixing (e.g. random intensity).

    Returns:
        ``(sup, unsup)``: CE + Dice summed over branches on the ground-truth parts and on
        the pseudo-labelled parts of the mixed crops.
    """
    n = label.shape[0]
    unlabelled = image[n:] if perturb is None else perturb(image[n:])
    li, ui = (i.to(image.device) for i in pair_indices(n, unlabelled.shape[0]))
    mask = cuboid_mask(li.shape[0], label.shape[1:], mask_ratio, image.device)
    x_l, y_l, x_u = image[:n][li], label[li], unlabelled[ui]
    logits = net(torch.cat([paste(x_l, x_u, mask), paste(x_u, x_l, mask)]))
    m = mask.float()
    labelled_part = torch.cat([m, 1.0 - m])
    both = None if present is None else (present[:n][li] & present[n:][ui]).repeat(2, 1)
    sup = unsup = logits[0].new_zeros(())
    for b, (lg, pseudo) in enumerate(zip(logits, cross_targets(teacher))):
        y_u = pseudo[ui]
        target = torch.cat([paste(y_l, y_u, mask), paste(y_u, y_l, mask)])
        keep = 1.0 if both is None else both[:, b].float().view(-1, *[1] * (mask.dim() - 1))
        sup = sup + part_loss(lg, target, labelled_part * keep)
        unsup = unsup + part_loss(lg, target, (1.0 - labelled_part) * keep)
    return sup, unsup
