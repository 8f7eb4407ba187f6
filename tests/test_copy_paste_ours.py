"""Bidirectional copy-paste in ``ours`` (``method.options.copy_paste``)."""

from __future__ import annotations

import pytest
import torch
from _ours_views import ours, record_views

from duetseg.errors import ConfigError
from duetseg.methods.bcp import part_loss
from duetseg.methods.copy_paste import copy_paste_losses
from duetseg.methods.pseudo_label_losses import cross_targets

SHAPE = (8, 8, 8)


class FixedBranches(torch.nn.Module):
    """Two "branches": branch ``m``'s foreground logit is ``3 x_m - 1.5`` plus a learnable
    per-voxel map, its background logit another map (seeded, so the branches differ)."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.randn(2, 2, *SHAPE, generator=torch.Generator()
                                                   .manual_seed(5)))

    def forward(self, x):
        out = []
        for m in range(2):
            fg = 3.0 * x[:, m] - 1.5 + self.bias[m, 1]
            out.append(torch.stack([self.bias[m, 0].expand_as(fg), fg], 1))
        return out


def _batch():
    torch.manual_seed(0)
    image = torch.rand(4, 2, *SHAPE)
    label = (torch.rand(2, *SHAPE) > 0.5).long()
    return image, label


def test_cross_targets_are_the_other_branchs_argmax():
    a = torch.randn(2, 3, 4, 4, 4)
    b = torch.randn(2, 3, 4, 4, 4)
    ta, tb = cross_targets([a, b])
    assert torch.equal(ta, b.argmax(1)) and torch.equal(tb, a.argmax(1))
    (only,) = cross_targets([a])
    assert torch.equal(only, a.argmax(1))


def test_full_cuboid_gives_plain_supervision_and_cross_pseudo_labels():
    # ratio 1: x_in is the labelled crop, x_out the unlabelled one, unmixed
    image, label = _batch()
    net = FixedBranches()
    teacher = [lg[2:] for lg in net(image)]
    sup, unsup = copy_paste_losses(net, image, label, teacher, mask_ratio=1.0)
    logits = net(torch.cat([image[:2], image[2:]]))
    targets = cross_targets(teacher)
    ones, zeros = torch.ones(2, *SHAPE), torch.zeros(2, *SHAPE)
    part = torch.cat([ones, zeros])
    want_sup = sum(part_loss(lg, torch.cat([label, t]), part) for lg, t in zip(logits, targets))
    want_unsup = sum(part_loss(lg, torch.cat([label, t]), 1 - part)
                     for lg, t in zip(logits, targets))
    assert torch.allclose(sup, want_sup) and torch.allclose(unsup, want_unsup)
    # branch a learns branch b's argmax on the unlabelled crops, not its own
    assert not torch.equal(targets[0], teacher[0].argmax(1))


def test_every_mixed_crop_holds_both_parts_and_targets_follow_the_mask():
    image, label = _batch()
    seen = []

    def net(x):
        seen.append(x)
        return FixedBranches()(x)

    teacher = [torch.randn(2, 2, *SHAPE), torch.randn(2, 2, *SHAPE)]
    torch.manual_seed(1)
    copy_paste_losses(net, image, label, teacher, mask_ratio=0.5)
    x = seen[0]
    assert x.shape == (4, 2, *SHAPE)
    for k in range(2):  # pair k = labelled k with unlabelled k
        from_l = torch.isclose(x[k], image[k]).all(0)
        from_u = torch.isclose(x[k], image[2 + k]).all(0)
        assert from_l.any() and from_u.any() and bool((from_l | from_u).all())
        assert int(from_l.sum()) == 4 ** 3  # a cuboid of side 0.5 x 8
        # the "out" crop is the complement
        assert torch.equal(torch.isclose(x[2 + k], image[2 + k]).all(0), from_l)


def test_an_absent_branch_gets_no_loss_on_crops_missing_its_input():
    image, label = _batch()
    net = FixedBranches()
    teacher = [lg[2:] for lg in net(image)]
    present = torch.ones(4, 2, dtype=torch.bool)
    present[3, 0] = False  # unlabelled crop 1 lacks modality a: pair 1 loses branch a
    sup, unsup = copy_paste_losses(net, image, label, teacher, 1.0, present)
    (sup + unsup).backward()
    grad_a = net.bias.grad[0]
    assert grad_a.abs().sum() > 0
    net.bias.grad = None
    present[:, 0] = False  # branch a absent everywhere
    sup, unsup = copy_paste_losses(net, image, label, teacher, 1.0, present)
    (sup + unsup).backward()
    assert net.bias.grad[0].abs().sum() == 0 and net.bias.grad[1].abs().sum() > 0


def test_ours_copy_paste_trains_from_clean_teacher_predictions(monkeypatch):
    torch.manual_seed(0)
    method = ours(copy_paste=True)
    calls, _ = record_views(method, monkeypatch)
    image, label = torch.rand(4, 2, 16, 16, 16), (torch.rand(2, 16, 16, 16) > 0.5).long()
    losses = method.training_losses(image, label, iteration=99)
    assert len(calls) == 2
    assert torch.equal(calls[0][0], image) and not calls[0][1]  # clean, no gradient
    assert calls[1][1] and not torch.equal(calls[1][0], image)  # mixed, with gradient
    assert torch.isfinite(losses["loss"]) and float(losses["unsup"].detach()) > 0
    assert float(losses["unsup_weight"]) > 0
    losses["loss"].backward()
    assert all(p.grad is not None for p in method.net.parameters() if p.requires_grad)


def test_ours_copy_paste_with_intensity_view_perturbs_only_unlabelled_parts(monkeypatch):
    torch.manual_seed(0)
    method = ours(copy_paste=True, intensity_view=True, copy_paste_ratio=1.0)
    calls, _ = record_views(method, monkeypatch)
    image, label = torch.rand(4, 2, 16, 16, 16), (torch.rand(2, 16, 16, 16) > 0.5).long()
    method.training_losses(image, label, iteration=99)
    student = calls[1][0]
    assert torch.equal(student[:2], image[:2])  # labelled crops untouched
    assert not torch.allclose(student[2:], image[2:])


@pytest.mark.parametrize("options", [{"consistency": "mse"}, {"cutmix": True},
                                     {"cross_branch_grad": False}])
def test_copy_paste_rejects_options_it_does_not_combine_with(options):
    with pytest.raises(ConfigError, match="copy_paste needs"):
        ours(copy_paste=True, **options)
