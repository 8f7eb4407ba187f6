"""The consistency targets of ``ours`` (``method.options.consistency``) and the control."""

from __future__ import annotations

import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.errors import ConfigError
from duetseg.methods import MethodContext, build_method
from duetseg.methods.losses import SupervisedLoss, class_argmax, cross_branch_mse
from duetseg.methods.pseudo_label_losses import cross_pseudo_supervision


def _probs(values: list[list[float]]) -> torch.Tensor:
    """(1, 2, V) foreground/background probabilities from per-voxel foreground values."""
    fg = torch.tensor(values, dtype=torch.float32)
    return torch.stack([1 - fg, fg], dim=1).requires_grad_(True)


@pytest.mark.parametrize("channels_last", [False, True])
def test_class_argmax_equals_argmax_first_index_on_ties(channels_last):
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, 6).round()  # rounding makes ties between classes
    if channels_last:
        logits = logits.to(memory_format=torch.channels_last_3d)
    assert (logits[:, 0] == logits[:, 1]).any()
    for dim in range(logits.dim()):
        assert torch.equal(class_argmax(logits, dim), logits.argmax(dim))
    tied = torch.zeros(1, 2, 3)
    assert class_argmax(tied).eq(0).all()


def test_cross_pseudo_supervision_weighs_a_small_pseudo_foreground():
    """One branch sees a 1-voxel tumour the other misses: CPS pulls hard towards it, MSE barely."""
    size = 8 ** 3
    fg_a = torch.full((1, size), 0.02)
    fg_a[0, 0] = 0.95  # branch a sees the tumour voxel
    fg_b = torch.full((1, size), 0.02)  # branch b sees nothing
    la = torch.log(torch.stack([1 - fg_a, fg_a], 1)).requires_grad_(True)
    lb = torch.log(torch.stack([1 - fg_b, fg_b], 1)).requires_grad_(True)
    loss = cross_pseudo_supervision([la, lb], SupervisedLoss())
    ga, gb = torch.autograd.grad(loss, [la, lb])
    # b is taught a's tumour voxel: its foreground logit there is pushed up, strongly
    assert gb[0, 1, 0] < 0 and gb[0, 1, 0].abs() > 20 * gb[0, 1, 1].abs()
    # a is taught "no tumour" by b, and the Dice part makes that gradient count too
    assert ga[0, 1, 0] > 0
    pa, pb = torch.softmax(la, 1), torch.softmax(lb, 1)
    mse_grad = torch.autograd.grad(cross_branch_mse([pa, pb]), [lb])[0]
    assert gb[0, 1, 0].abs() > 20 * mse_grad[0, 1, 0].abs()
    # identical confident branches: only the supervised loss of their own argmax is left
    same = cross_pseudo_supervision([la.detach(), la.detach()], SupervisedLoss())
    assert same.item() < loss.item()


def _ctx(**options) -> MethodContext:
    return MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                         MethodConfig(name="ours", options=options), 100)


@pytest.mark.parametrize("consistency", ["mse", "cross_pseudo"])
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


def test_run_config_spells_out_method_options_and_resume_compares_them():
    from duetseg.config import load_config
    from duetseg.training.run import _identity, with_resolved_options

    cfg = load_config("demo", ["method.name=ours"])
    assert cfg.method.options == {}
    resolved = with_resolved_options(cfg)
    assert resolved.method.options == {"consistency": "cross_pseudo", "pseudo_prior": "soft",
                                       "mcml": True, "missing_distill": False}
    assert _identity(cfg) == _identity(resolved)  # a config saved before resolving resumes
    paper = load_config("demo", ["method.name=ours", "method.options.consistency=mse"])
    assert _identity(paper) != _identity(cfg)
    # the soft-volume default applies to hard pseudo-labels only: mse resolves to "off"
    assert with_resolved_options(paper).method.options["pseudo_prior"] == "off"
    with pytest.raises(ConfigError, match="consistency"):
        with_resolved_options(load_config("demo", ["method.options.consistency=kl"]))


def test_removed_options_load_at_their_off_value_and_are_refused_otherwise():
    from duetseg.config import load_config
    from duetseg.training.run import with_resolved_options

    old = load_config("demo", ["method.name=ours", "method.options.cutmix=false",
                               "method.options.pseudo_threshold=0.8",
                               "method.options.copy_paste_ratio=0.6666666666666666"])
    assert "cutmix" not in with_resolved_options(old).method.options
    spelled = load_config("demo", ["method.name=ours", "method.options.teachers=null"])
    assert "teachers" not in with_resolved_options(spelled).method.options
    for bad in ("method.options.cutmix=true", "method.options.consistency=hard_pseudo",
                "method.options.pseudo_prior=anchor", "method.options.teachers=[0,1]"):
        with pytest.raises(ConfigError, match="removed"):
            with_resolved_options(load_config("demo", ["method.name=ours", bad]))
