"""The consistency targets of ``ours`` (``method.options.consistency``) and the control."""

from __future__ import annotations

import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.errors import ConfigError
from duetseg.methods import MethodContext, build_method
from duetseg.methods.losses import confident_teacher_mse, cross_branch_mse, hard_pseudo_ce


def _probs(values: list[list[float]]) -> torch.Tensor:
    """(1, 2, V) foreground/background probabilities from per-voxel foreground values."""
    fg = torch.tensor(values, dtype=torch.float32)
    return torch.stack([1 - fg, fg], dim=1).requires_grad_(True)


def test_confident_teacher_only_the_less_confident_branch_learns():
    a = _probs([[0.9, 0.5]])   # confident on voxel 0, unsure on voxel 1
    b = _probs([[0.4, 0.05]])  # unsure on voxel 0, confident on voxel 1
    loss = confident_teacher_mse([a, b])
    ga, gb = torch.autograd.grad(loss, [a, b])
    assert ga[0, :, 0].abs().sum() == 0 and ga[0, :, 1].abs().sum() > 0
    assert gb[0, :, 1].abs().sum() == 0 and gb[0, :, 0].abs().sum() > 0
    # value: mean over the 4 elements of each branch, only its student voxel counts
    expected = (2 * (0.5 - 0.05) ** 2 + 2 * (0.4 - 0.9) ** 2) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_confident_teacher_is_zero_for_identical_branches_and_below_mse():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(2, 3, 4, 4, 4), 1)
    assert confident_teacher_mse([p, p.clone()]).item() == 0.0
    q = torch.softmax(torch.randn(2, 3, 4, 4, 4), 1)
    assert 0 < confident_teacher_mse([p, q]).item() < cross_branch_mse([p, q]).item()


def test_hard_pseudo_labels_are_masked_by_confidence():
    la = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]]).permute(1, 0, 2).requires_grad_(True)
    # branch b: voxel 0 confidently background, voxel 1 unsure
    lb = torch.tensor([[[5.0, 0.1]], [[0.0, 0.0]]]).permute(1, 0, 2).requires_grad_(True)
    loss = hard_pseudo_ce([la, lb], threshold=0.8)
    ga, gb = torch.autograd.grad(loss, [la, lb])
    assert ga[0, :, 1].abs().sum() == 0  # b unsure at voxel 1: no target for a
    assert ga[0, :, 0].abs().sum() > 0
    # b learns a's label at voxel 0 (a confident: softmax(2) = 0.88), not at voxel 1
    assert gb[0, :, 0].abs().sum() > 0 and gb[0, :, 1].abs().sum() == 0
    assert hard_pseudo_ce([la, lb], threshold=0.99).item() < loss.item()


def _ctx(**options) -> MethodContext:
    return MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                         MethodConfig(name="ours", options=options), 100)


@pytest.mark.parametrize("consistency", ["mse", "confident_teacher", "hard_pseudo"])
def test_ours_consistency_options_train(consistency):
    torch.manual_seed(0)
    method = build_method(_ctx(consistency=consistency))
    image = torch.rand(4, 2, 16, 16, 16)
    label = (torch.rand(2, 16, 16, 16) > 0.5).long()
    losses = method.training_losses(image, label, iteration=99)
    assert torch.isfinite(losses["loss"]) and "unsup" in losses
    losses["loss"].backward()


def test_unknown_consistency_is_a_config_error():
    with pytest.raises(ConfigError, match="consistency"):
        build_method(_ctx(consistency="kl"))


def test_control_with_weight_zero_keeps_unlabelled_crops_but_not_their_loss():
    """``consistency_weight=0``: same batches (BatchNorm sees them), no unsupervised term."""
    ctx = MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                        MethodConfig(name="ours", consistency_weight=0.0), 100)
    torch.manual_seed(0)
    method = build_method(ctx)
    assert method.uses_unlabeled
    image = torch.rand(4, 2, 16, 16, 16)
    label = (torch.rand(2, 16, 16, 16) > 0.5).long()
    losses = method.training_losses(image, label, iteration=99)
    assert torch.equal(losses["loss"], losses["sup"])
