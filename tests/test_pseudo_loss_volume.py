"""How the loss a branch learns its pseudo-labels with moves its predicted volume.

A learner that cannot tell some voxels apart (one logit per group of voxels, like a network
on an ambiguous tumour rim) fits a pseudo-label map whose rim is 30 % foreground. With
cross-entropy alone its expected volume matches the pseudo-labels' (CE is calibrated); with
CE + soft Dice (``cross_pseudo``) the Dice part pushes the whole rim up and the volume grows,
and volume-kept pseudo-labels (``pseudo_prior: soft``) hand that growth back to the other
branch the next step: the over-segmentation measured on real BraTS (BENCHMARKS.md).
"""

from __future__ import annotations

import pytest
import torch

from duetseg.methods.losses import SupervisedLoss
from duetseg.methods.pseudo_label_losses import cross_pseudo_supervision

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 10, 19, 20)  # 3800 voxels: 60 sure tumour, 600 rim, 3140 sure background


def _groups_and_source() -> tuple[torch.Tensor, torch.Tensor]:
    """Voxel group (0 core, 1 rim, 2 background) and the pseudo-label source's logits."""
    gen = torch.Generator().manual_seed(0)
    group = torch.cat([torch.zeros(60), torch.ones(600), torch.full((3140,), 2.0)]).long()
    rim = (torch.rand(600, generator=gen) < 0.3).float()
    fg = torch.cat([torch.ones(60), rim, torch.zeros(3140)])
    source = torch.stack([5 - 10 * fg, 10 * fg - 5]).reshape(1, 2, *SHAPE[1:])
    return group, source


def _fitted_volume(consistency) -> tuple[float, float]:
    """Expected volume of a per-group learner fitted to the source's pseudo-labels, and theirs."""
    group, source = _groups_and_source()
    logits = torch.zeros(3, 2, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(400):
        learner = logits[group].T.reshape(1, 2, *SHAPE[1:])
        loss = consistency([learner, source])
        opt.zero_grad()
        loss.backward()
        opt.step()
    volume = torch.softmax(logits.detach(), 1)[group, 1].sum()
    return float(volume), float(source.argmax(1).sum())


def test_dice_in_the_pseudo_label_loss_inflates_the_volume():
    volume, target = _fitted_volume(lambda lg: cross_pseudo_supervision(lg, SupervisedLoss()))
    assert volume > 1.25 * target
