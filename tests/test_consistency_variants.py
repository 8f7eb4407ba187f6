"""The consistency targets of ``ours`` (``method.options.consistency``) and the control."""

from __future__ import annotations

import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.errors import ConfigError
from duetseg.methods import MethodContext, build_method
from duetseg.methods.losses import (
    SupervisedLoss,
    class_argmax,
    confident_teacher_mse,
    cross_branch_mse,
)
from duetseg.methods.pseudo_label_losses import (
    confident_pseudo_supervision,
    cross_pseudo_supervision,
    foreground_cross_pseudo,
    hard_pseudo_ce,
    masked_ce_dice,
)


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


def test_ensemble_pseudo_keeps_the_confident_branch_label():
    """a is sure of a tumour voxel that b doubts: CPS teaches a "background", the ensemble
    target does not; where b is sure and a unsure, both learn b's label."""
    fa = torch.tensor([[0.95, 0.45]])  # voxel 0: a confident fg; voxel 1: a unsure
    fb = torch.tensor([[0.40, 0.02]])  # voxel 0: b unsure; voxel 1: b confident bg
    la = torch.log(torch.stack([1 - fa, fa], 1)).requires_grad_(True)
    lb = torch.log(torch.stack([1 - fb, fb], 1)).requires_grad_(True)

    def ce(logits, target):  # voxel-wise CE keeps the per-voxel signs readable
        return torch.nn.functional.cross_entropy(logits, target)

    ga_cps = torch.autograd.grad(cross_pseudo_supervision([la, lb], ce), la)[0]
    ga_ens, gb_ens = torch.autograd.grad(
        cross_pseudo_supervision([la, lb], ce, include_self=True), [la, lb])
    assert ga_cps[0, 1, 0] > 0  # CPS: b's argmax (bg) pushes a's fg logit down
    assert ga_ens[0, 1, 0] < 0 and gb_ens[0, 1, 0] < 0  # ensemble fg: both pushed up
    assert ga_ens[0, 1, 1] > 0 and gb_ens[0, 1, 1] > 0  # ensemble bg at voxel 1
    # identical branches: the ensemble target equals the cross target
    same = [la.detach(), la.detach()]
    assert torch.equal(cross_pseudo_supervision(same, ce, include_self=True),
                       cross_pseudo_supervision(same, ce))


def test_masked_ce_dice_is_the_supervised_loss_on_the_masked_voxels():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, 8)
    target = torch.randint(0, 3, (2, 4, 4, 8))
    sup = SupervisedLoss()
    assert torch.allclose(masked_ce_dice(logits, target, torch.ones_like(target, dtype=torch.bool)),
                          sup(logits, target))
    mask = torch.zeros_like(target, dtype=torch.bool)
    mask[..., :4] = True
    ce = torch.nn.functional.cross_entropy(logits[..., :4], target[..., :4], reduction="sum")
    dice = sup.dice(logits[..., :4], target[..., :4].unsqueeze(1))
    assert torch.allclose(masked_ce_dice(logits, target, mask), ce / target.numel() + dice)
    nothing = masked_ce_dice(logits, target, torch.zeros_like(mask))
    assert float(nothing) == pytest.approx(0.0, abs=1e-6)


def test_confident_pseudo_lets_the_surer_branch_teach_and_not_learn():
    """Voxel 0: a sure of tumour, b unsure of background -> b learns tumour, a nothing.
    Voxel 1: b sure of background, a unsure of tumour -> a learns background, b nothing."""
    fa = torch.tensor([[0.95, 0.55]])
    fb = torch.tensor([[0.40, 0.02]])
    la = torch.log(torch.stack([1 - fa, fa], 1)).requires_grad_(True)
    lb = torch.log(torch.stack([1 - fb, fb], 1)).requires_grad_(True)
    ga, gb = torch.autograd.grad(confident_pseudo_supervision([la, lb]), [la, lb])
    assert gb[0, 1, 0] < 0 and torch.all(gb[0, :, 1] == 0)  # b: fg pushed up at voxel 0
    assert ga[0, 1, 1] > 0 and torch.all(ga[0, :, 0] == 0)  # a: fg pushed down at voxel 1
    # targets from another source (e.g. the clean crops), here the two swapped: at voxel 0
    # the surer source (0.95 tumour) teaches a; at voxel 1 a's source (0.98 bg) teaches b
    teacher = [lb.detach(), la.detach()]
    ga_t = torch.autograd.grad(confident_pseudo_supervision([la, lb], teacher), la)[0]
    assert ga_t[0, 1, 0] < 0 and torch.all(ga_t[0, :, 1] == 0)


def test_foreground_pseudo_never_lets_background_erase_a_branchs_foreground():
    """Voxel 0: a tumour, b background -> b learns tumour, a gets no loss (not erased).
    Voxel 1: both background -> both learn background. Voxel 2: a background, b tumour."""
    fa = torch.tensor([[0.9, 0.1, 0.2]])
    fb = torch.tensor([[0.3, 0.2, 0.7]])
    la = torch.log(torch.stack([1 - fa, fa], 1)).requires_grad_(True)
    lb = torch.log(torch.stack([1 - fb, fb], 1)).requires_grad_(True)
    ga, gb = torch.autograd.grad(foreground_cross_pseudo([la, lb]), [la, lb])
    assert torch.all(ga[0, :, 0] == 0) and torch.all(gb[0, :, 2] == 0)  # nothing erased
    assert gb[0, 1, 0] < 0 and ga[0, 1, 2] < 0  # the missed tumour is taught both ways
    assert ga[0, 1, 1] > 0 and gb[0, 1, 1] > 0  # agreed background still learnt
    # plain cross pseudo-labels would erase it: a's tumour at voxel 0 pushed down
    ce = torch.nn.CrossEntropyLoss()
    assert torch.autograd.grad(cross_pseudo_supervision([la, lb], ce), la)[0][0, 1, 0] > 0


def test_foreground_pseudo_is_cross_pseudo_when_nothing_is_contested():
    torch.manual_seed(0)
    la = torch.randn(2, 2, 6, 6, 6)
    lb = 2 * la  # same argmax, other probabilities
    assert torch.allclose(foreground_cross_pseudo([la, lb]),
                          cross_pseudo_supervision([la, lb], SupervisedLoss()), atol=1e-5)
    # the learner's own foreground is read from the teacher logits: a teacher for a that
    # sees tumour everywhere b's teacher does not makes those voxels contested for a
    ta = torch.stack([torch.zeros(2, 6, 6, 6), torch.ones(2, 6, 6, 6)], 1)
    tb = -ta
    plain = cross_pseudo_supervision([la, lb], SupervisedLoss(), teacher=[ta, tb])
    assert not torch.allclose(foreground_cross_pseudo([la, lb], [ta, tb]), plain)
    # erase_weight 1 gives the contested voxels their full weight back: plain CPS
    assert torch.allclose(foreground_cross_pseudo([la, lb], [ta, tb], erase_weight=1.0),
                          plain, atol=1e-5)
    half = foreground_cross_pseudo([la, lb], [ta, tb], erase_weight=0.5)
    low = foreground_cross_pseudo([la, lb], [ta, tb])
    assert low < half < plain


def _ctx(**options) -> MethodContext:
    return MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                         MethodConfig(name="ours", options=options), 100)


@pytest.mark.parametrize("consistency",
                         ["mse", "confident_teacher", "hard_pseudo", "cross_pseudo",
                          "ensemble_pseudo", "confident_pseudo", "foreground_pseudo"])
def test_ours_consistency_options_train(consistency):
    torch.manual_seed(0)
    method = build_method(_ctx(consistency=consistency))
    image = torch.rand(4, 2, 16, 16, 16)
    label = (torch.rand(2, 16, 16, 16) > 0.5).long()
    losses = method.training_losses(image, label, iteration=99)
    assert torch.isfinite(losses["loss"]) and "unsup" in losses
    losses["loss"].backward()


def test_detached_gates_keep_values_and_stop_cross_branch_gradients():
    from duetseg.models.duetnet import DuetNet

    torch.manual_seed(0)
    net = DuetNet(2, 2, base_width=4, dropout=0.0).eval()
    x = torch.rand(4, 2, 16, 16, 16)
    plain, detached = net(x), net(x, detach_gates_from=2)
    for a, b in zip(plain, detached, strict=True):
        assert torch.equal(a, b)

    def grad_of_branch_b_params(out: list[torch.Tensor], rows: slice) -> float:
        net.zero_grad()
        out[0][rows].sum().backward()  # a loss on branch a's output only
        return sum(float(p.grad.abs().sum()) for p in net.encoders[1].parameters()
                   if p.grad is not None)

    assert grad_of_branch_b_params(net(x), slice(2, 4)) > 0  # through the gates
    assert grad_of_branch_b_params(net(x, detach_gates_from=2), slice(2, 4)) == 0
    assert grad_of_branch_b_params(net(x, detach_gates_from=2), slice(0, 2)) > 0


def test_ours_without_cross_branch_grad_detaches_only_the_unlabelled_rows(monkeypatch):
    method = build_method(_ctx(cross_branch_grad=False))
    seen = []
    forward = method.net.forward
    monkeypatch.setattr(method.net, "forward",
                        lambda x, detach_gates_from=None: seen.append(detach_gates_from)
                        or forward(x, detach_gates_from))
    image, label = torch.rand(4, 2, 16, 16, 16), torch.zeros(2, 16, 16, 16, dtype=torch.long)
    method.training_losses(image, label, iteration=50)["loss"].backward()
    build_default = build_method(_ctx())
    seen_default = []
    fwd = build_default.net.forward
    monkeypatch.setattr(build_default.net, "forward",
                        lambda x, detach_gates_from=None: seen_default.append(detach_gates_from)
                        or fwd(x, detach_gates_from))
    build_default.training_losses(image, label, iteration=50)
    assert seen == [2] and seen_default == [None]


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
    assert resolved.method.options == {"consistency": "cross_pseudo", "pseudo_threshold": 0.8,
                                       "erase_weight": 0.0, "pseudo_prior": "soft",
                                       "anchor_window": [0.1, 0.2], "prior_rate": 0.02,
                                       "prior_max_shift": 5.0,
                                       "mcml": True, "cross_branch_grad": True,
                                       "cutmix": False, "cutmix_ratio": 0.8,
                                       "intensity_view": False, "copy_paste": False,
                                       "copy_paste_ratio": 2.0 / 3.0,
                                       "missing_distill": False}
    assert _identity(cfg) == _identity(resolved)  # a config saved before resolving resumes
    paper = load_config("demo", ["method.name=ours", "method.options.consistency=mse"])
    assert _identity(paper) != _identity(cfg)
    # the soft-volume default applies to hard pseudo-labels only: mse resolves to "off"
    assert with_resolved_options(paper).method.options["pseudo_prior"] == "off"
    with pytest.raises(ConfigError, match="consistency"):
        with_resolved_options(load_config("demo", ["method.options.consistency=kl"]))
