"""CutMix of the unlabelled crops in ``ours`` (``method.options.cutmix``) and its helpers."""

from __future__ import annotations

import pytest
import torch
from _ours_views import ours, record_views

from duetseg.methods.losses import (
    SupervisedLoss,
    class_argmax,
    cross_branch_mse,
    masked_branch_consistency,
)
from duetseg.methods.mixing import cuboid_mask, cutmix_with_neighbour
from duetseg.methods.prior_guard import soft_volume_shift
from duetseg.methods.pseudo_label_losses import cross_pseudo_supervision


def test_cutmix_with_neighbour_mixes_every_tensor_the_same_way():
    torch.manual_seed(0)
    image = torch.rand(3, 2, 6, 7, 5)
    label = torch.randint(0, 3, (3, 6, 7, 5))
    mask = cuboid_mask(3, (6, 7, 5), 0.5)
    mixed_image, mixed_label = cutmix_with_neighbour([image, label], mask)
    for i in range(3):
        j = (i + 1) % 3
        inside = mask[i]
        assert torch.equal(mixed_image[i][:, inside], image[i][:, inside])
        assert torch.equal(mixed_image[i][:, ~inside], image[j][:, ~inside])
        assert torch.equal(mixed_label[i][inside], label[i][inside])
        assert torch.equal(mixed_label[i][~inside], label[j][~inside])
    assert mixed_label.dtype == label.dtype
    single = torch.rand(1, 2, 4, 4, 4)
    assert torch.equal(cutmix_with_neighbour([single], cuboid_mask(1, (4, 4, 4), 0.5))[0],
                       single)


def test_consistency_targets_come_from_the_teacher():
    torch.manual_seed(0)
    ce = SupervisedLoss()
    student = [torch.randn(2, 2, 4, 4, 4, requires_grad=True) for _ in range(2)]
    teacher = [torch.randn(2, 2, 4, 4, 4) for _ in range(2)]
    expected = ce(student[0], class_argmax(teacher[1])) + ce(student[1], class_argmax(teacher[0]))
    assert torch.allclose(cross_pseudo_supervision(student, ce, teacher=teacher), expected)
    assert torch.equal(cross_pseudo_supervision(student, ce, teacher=student),
                       cross_pseudo_supervision(student, ce))
    probs = [torch.softmax(s, 1) for s in student]
    t_probs = [torch.softmax(t, 1) for t in teacher]
    expected_mse = (torch.mean((probs[0] - t_probs[1]) ** 2)
                    + torch.mean((probs[1] - t_probs[0]) ** 2))
    assert torch.allclose(cross_branch_mse(probs, t_probs), expected_mse)
    # a teacher gives no gradient
    cross_pseudo_supervision(student, ce, teacher=[t.requires_grad_(True) for t in teacher]
                             ).backward()
    assert all(t.grad is None for t in teacher)


def test_masked_consistency_passes_the_teacher_rows_of_each_group():
    torch.manual_seed(0)
    ce = SupervisedLoss()
    student = [torch.randn(3, 2, 4, 4, 4) for _ in range(2)]
    teacher = [torch.randn(3, 2, 4, 4, 4) for _ in range(2)]

    def loss(lg, t=None):
        return cross_pseudo_supervision(lg, ce, teacher=t)

    everything = torch.ones(3, 2, dtype=torch.bool)
    assert torch.allclose(masked_branch_consistency(loss, student, everything, teacher),
                          loss(student, teacher))
    present = torch.tensor([[True, True], [True, False], [True, True]])
    rows = torch.tensor([0, 2])
    expected = loss([s[rows] for s in student], [t[rows] for t in teacher]) * (2 / 3)
    assert torch.allclose(masked_branch_consistency(loss, student, present, teacher), expected)


def test_ours_cutmix_predicts_unmixed_crops_then_learns_their_mixed_predictions(monkeypatch):
    torch.manual_seed(0)
    method = ours(cutmix=True, cutmix_ratio=0.5)
    calls, seen_teacher = record_views(method, monkeypatch)
    image = torch.rand(4, 2, 16, 16, 16)
    label = (torch.rand(2, 16, 16, 16) > 0.5).long()
    torch.manual_seed(7)
    method.training_losses(image, label, iteration=99)["loss"].backward()
    torch.manual_seed(7)
    mask = cuboid_mask(2, (16, 16, 16), 0.5)  # the same draw as inside the method

    (x_teacher, grad_teacher, out_teacher), (x_student, grad_student, _) = calls
    assert not grad_teacher and grad_student
    assert torch.equal(x_teacher, image)  # the whole batch: batch norm as without views
    assert torch.equal(x_student[:2], image[:2])
    assert torch.equal(x_student[2:], cutmix_with_neighbour([image[2:]], mask)[0])
    assert not torch.equal(x_student[2:], image[2:])
    # the unmixed predictions mixed like the inputs, volume-kept (pseudo_prior: soft)
    mixed = soft_volume_shift([cutmix_with_neighbour([out[2:]], mask)[0] for out in out_teacher])
    for got, out in zip(seen_teacher[0], mixed, strict=True):
        assert torch.equal(got, out)


def test_ours_without_cutmix_runs_the_network_once(monkeypatch):
    method = ours()
    calls = []
    forward = method.net.forward
    monkeypatch.setattr(method.net, "forward",
                        lambda x, detach_gates_from=None: calls.append(x.shape[0])
                        or forward(x, detach_gates_from))
    method.training_losses(torch.rand(4, 2, 16, 16, 16),
                           torch.zeros(2, 16, 16, 16, dtype=torch.long), iteration=10)
    assert calls == [4]


def test_mixed_crop_keeps_a_branch_only_where_both_sources_had_it():
    method = ours(cutmix=True)
    present = torch.tensor([[True, True], [True, True], [True, False], [True, True],
                            [False, True]])
    _, _, mixed = method.strong_view(torch.rand(5, 2, 16, 16, 16), 2, present)
    # unlabelled crops 2, 3, 4 mixed with 3, 4, 2
    assert mixed.tolist() == [[True, False], [False, True], [False, False]]


@pytest.mark.parametrize("consistency",
                         ["mse", "confident_teacher", "hard_pseudo", "cross_pseudo",
                          "ensemble_pseudo", "confident_pseudo", "foreground_pseudo"])
def test_ours_cutmix_trains_with_every_consistency(consistency):
    torch.manual_seed(0)
    method = ours(consistency=consistency, cutmix=True)
    image = torch.rand(4, 2, 16, 16, 16)
    label = (torch.rand(2, 16, 16, 16) > 0.5).long()
    losses = method.training_losses(image, label, iteration=99)
    assert torch.isfinite(losses["loss"]) and float(losses["unsup"].detach()) > 0
    losses["loss"].backward()
    assert all(p.grad is not None for p in method.net.parameters() if p.requires_grad)
