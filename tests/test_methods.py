"""Objectives: stop-gradient of mutual learning, ramp-up, registry, loss composition."""

import math

import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.errors import ConfigError
from duetseg.methods import MethodContext, available_methods, build_method, sigmoid_rampup
from duetseg.methods.losses import cross_branch_mse


def _ctx(name="ours", **method_kwargs):
    return MethodContext(
        modalities=("t1ce", "t2"), num_classes=2,
        model=ModelConfig(base_width=4, dropout=0.0),
        method=MethodConfig(name=name, **method_kwargs), max_iterations=100,
    )


def test_cross_branch_mse_stops_gradient_through_the_target():
    a = torch.rand(2, 2, 4, 4, 4, requires_grad=True)
    b = torch.rand(2, 2, 4, 4, 4, requires_grad=True)
    # Only the a -> sg(b) term: d/da must be 2(a-b)/N, and b gets nothing from being a target.
    loss_a_only = torch.mean((a - b.detach()) ** 2)
    (grad_b,) = torch.autograd.grad(loss_a_only, [b], allow_unused=True)
    assert grad_b is None
    loss = cross_branch_mse([a, b])
    ga, gb = torch.autograd.grad(loss, [a, b])
    n = a.numel()
    # With the stop-gradient each branch's gradient is 2(p - q)/N from its own term only;
    # without it, it would be 4(p - q)/N (both terms differentiate through both inputs).
    assert torch.allclose(ga, 2 * (a - b).detach() / n, atol=1e-7)
    assert torch.allclose(gb, 2 * (b - a).detach() / n, atol=1e-7)


def test_mutual_learning_loss_does_not_flow_into_pseudo_label_branch():
    """In DuetNet with independent branches, sg(p_b) as target gives branch b no gradient."""
    torch.manual_seed(0)
    ctx = MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0, fusion="none",
                                                        mae=False), MethodConfig(), 100)
    net = build_method(ctx).net
    logits = net(torch.rand(2, 2, 16, 16, 16))
    pa, pb = (torch.softmax(lg, 1) for lg in logits)
    loss = torch.mean((pa - pb.detach()) ** 2)  # branch a learns from branch b's pseudo label
    named = list(net.named_parameters())
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True,
                                retain_graph=True)
    moved = {n.split(".")[1] for (n, _), g in zip(named, grads)
             if g is not None and g.abs().sum() > 0}
    assert moved == {"0"}, f"only branch a's encoder/decoder may get gradient, got {moved}"
    # Without the stop-gradient branch b would be pulled as well.
    loss_no_sg = torch.mean((pa - pb) ** 2)
    grads = torch.autograd.grad(loss_no_sg, [p for _, p in named], allow_unused=True)
    moved = {n.split(".")[1] for (n, _), g in zip(named, grads)
             if g is not None and g.abs().sum() > 0}
    assert moved == {"0", "1"}


def test_rampup_shape():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(100, 100) == pytest.approx(1.0)
    assert sigmoid_rampup(500, 100) == pytest.approx(1.0)
    assert sigmoid_rampup(3, 0) == 1.0
    values = [sigmoid_rampup(t, 50) for t in range(0, 60, 5)]
    assert values == sorted(values)


def test_ours_losses_and_weight():
    torch.manual_seed(0)
    method = build_method(_ctx(rampup_fraction=0.0))
    x = torch.rand(4, 2, 16, 16, 16)
    y = (torch.rand(2, 16, 16, 16) > 0.7).long()
    losses = method.training_losses(x, y, iteration=0)
    assert set(losses) >= {"loss", "sup", "unsup"}
    assert losses["loss"].item() == pytest.approx(losses["sup"].item() + losses["unsup"].item(),
                                                  rel=1e-5)
    losses["loss"].backward()
    assert all(p.grad is not None for p in method.trainable_parameters())


def test_ours_without_mcml_uses_labelled_crops_only():
    method = build_method(_ctx(options={"mcml": False}))
    assert method.uses_unlabeled is False
    losses = method.training_losses(torch.rand(2, 2, 16, 16, 16),
                                    torch.zeros(2, 16, 16, 16, dtype=torch.long), 0)
    assert "unsup" not in losses


def test_ours_outputs_are_probabilities():
    method = build_method(_ctx()).eval()
    out = method.output_probabilities(torch.rand(1, 2, 16, 16, 16))
    assert set(out) == {"branch_a", "branch_b", "ensemble"}
    for p in out.values():
        assert torch.allclose(p.sum(1), torch.ones(1, 16, 16, 16), atol=1e-5)
    assert torch.allclose(out["ensemble"], (out["branch_a"] + out["branch_b"]) / 2, atol=1e-6)


def test_supervised_vnet_option_and_unknown_options():
    method = build_method(_ctx("supervised", options={"network": "vnet"}))
    assert method.primary_output == "prediction"
    out = method.eval().output_probabilities(torch.rand(1, 2, 16, 16, 16))
    assert set(out) == {"prediction"}
    with pytest.raises(ConfigError, match="invalid options"):
        build_method(_ctx("supervised", options={"nework": "vnet"}))


def test_registry_lists_and_rejects():
    names = available_methods()
    assert {"ours", "supervised"} <= set(names)
    assert all(isinstance(d, str) and d for d in names.values())
    with pytest.raises(ConfigError, match="unknown method"):
        build_method(_ctx("nope"))


def test_default_weight_and_rampup_come_from_the_method():
    method = build_method(_ctx())
    assert method.weight == 1.0  # the paper's alpha
    assert method.unsup_weight(50) == pytest.approx(1.0)  # 0.5 x 100 iterations ramp
    assert method.unsup_weight(0) == pytest.approx(math.exp(-5))
    assert build_method(_ctx(consistency_weight=0.3, rampup_fraction=0.0)).unsup_weight(0) == 0.3
