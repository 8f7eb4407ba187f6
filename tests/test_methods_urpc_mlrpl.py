"""URPC and MLRPL baselines: network variants, loss terms and the shared training check."""

import math

import pytest
import torch
from torch import nn

import duetseg.methods.registry as registry
from duetseg.config import MethodConfig, ModelConfig
from duetseg.methods import MethodContext, build_method
from duetseg.methods.mlrpl import (
    MLRPL,
    class_prototypes,
    entropy_map,
    reliability,
    reliable_pseudo_label_loss,
)
from duetseg.methods.urpc import URPC, kl_divergence_map, pyramid_consistency
from duetseg.models.multihead import DualDecoderVNet, MultiScaleVNet

NEW_METHODS = {"urpc": "duetseg.methods.urpc:URPC", "mlrpl": "duetseg.methods.mlrpl:MLRPL"}


def _ctx(name, **method_kwargs):
    return MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                         MethodConfig(name=name, **method_kwargs), max_iterations=100)


def test_registered_classes_and_defaults(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", {**registry.METHODS, **NEW_METHODS})
    urpc, mlrpl = build_method(_ctx("urpc")), build_method(_ctx("mlrpl"))
    assert isinstance(urpc, URPC) and isinstance(mlrpl, MLRPL)
    assert (urpc.weight, urpc.default_rampup_fraction) == (0.1, 1.0)
    assert (mlrpl.weight, mlrpl.default_rampup_fraction) == (1.0, 0.1)
    assert urpc.unsup_weight(100) == pytest.approx(0.1)
    assert mlrpl.unsup_weight(5) == pytest.approx(math.exp(-5 * 0.5**2))


# --------------------------------------------------------------------------------------- URPC

def test_multiscale_vnet_returns_four_full_size_outputs():
    torch.manual_seed(0)
    net = MultiScaleVNet(2, 3, base_width=4, dropout=0.0).eval()
    x = torch.rand(2, 2, 32, 32, 16)
    outs = net(x)
    assert len(outs) == 4
    assert all(o.shape == (2, 3, 32, 32, 16) for o in outs)
    # the last output is the plain VNet path; the coarse ones differ from it
    assert torch.allclose(outs[-1], net.segment(x), atol=1e-6)
    assert not torch.allclose(outs[0], outs[-1])


def test_pyramid_consistency_is_zero_when_all_scales_agree():
    z = torch.randn(2, 3, 4, 4, 4)
    loss, stats = pyramid_consistency([z.clone() for _ in range(4)])
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    assert float(stats["kl"]) == pytest.approx(0.0, abs=1e-6)
    different, _ = pyramid_consistency([z, z + torch.randn_like(z), z, z])
    assert float(different) > 1e-3


def test_kl_direction_matches_hand_computation():
    p_mean = torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1)
    p_s = torch.tensor([0.2, 0.2, 0.6]).view(1, 3, 1)
    expected = sum(a * math.log(a / b) for a, b in ([0.5, 0.2], [0.3, 0.2], [0.2, 0.6]))
    got = kl_divergence_map(p_mean.log(), p_s.log())
    assert got.shape == (1, 1, 1)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    reverse = sum(b * math.log(b / a) for a, b in ([0.5, 0.2], [0.3, 0.2], [0.2, 0.6]))
    assert abs(expected - reverse) > 1e-2  # the direction matters and is KL(p̄ ‖ p_s)


def test_pyramid_consistency_matches_formula_on_two_scales():
    z1 = torch.tensor([[0.0, 1.0], [2.0, -1.0]]).T.reshape(1, 2, 2)
    z2 = torch.tensor([[1.0, 0.0], [0.5, 0.5]]).T.reshape(1, 2, 2)
    p1, p2 = z1.softmax(1), z2.softmax(1)
    pm = (p1 + p2) / 2
    expected = 0.0
    for p in (p1, p2):
        v = (pm * (pm / p).log()).sum(1, keepdim=True)
        w = torch.exp(-v)
        expected += float(((pm - p) ** 2 * w).mean() / (w.mean() + 1e-8) + v.mean()) / 2
    loss, _ = pyramid_consistency([z1, z2])
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_pyramid_consistency_gradient_choices():
    z = [torch.randn(1, 2, 3, 3, 3, requires_grad=True) for _ in range(4)]
    loss, _ = pyramid_consistency(z)
    grads = torch.autograd.grad(loss, z)
    assert all(g.abs().sum() > 0 for g in grads)
    detached, _ = pyramid_consistency(z, detach_uncertainty=True)
    assert float(detached.detach()) == pytest.approx(float(loss.detach()))
    g_det = torch.autograd.grad(detached, z)
    assert not torch.allclose(g_det[0], grads[0])  # e^(-v) carries gradient by default


def test_urpc_inference_uses_only_full_resolution_head():
    torch.manual_seed(0)
    method = URPC(_ctx("urpc")).eval()
    x = torch.rand(1, 2, 16, 16, 16)
    calls = []
    for head in method.net.aux_heads:
        head.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        before = method.output_probabilities(x)["prediction"]
        for head in method.net.aux_heads:
            nn.init.normal_(head[1].weight, std=10.0)
        after = method.output_probabilities(x)["prediction"]
        full = torch.softmax(method.net(x)[-1], 1)
    assert calls == [1, 1, 1]  # only the explicit net(x) call ran the auxiliary heads
    assert torch.equal(before, after)
    assert torch.allclose(before, full, atol=1e-6)


def test_urpc_labelled_only_batch_has_no_unsup_term():
    torch.manual_seed(0)
    method = URPC(_ctx("urpc"))
    losses = method.training_losses(torch.rand(2, 2, 16, 16, 16),
                                    torch.zeros(2, 16, 16, 16, dtype=torch.long), 0)
    assert "unsup" not in losses and torch.equal(losses["loss"], losses["sup"])


# -------------------------------------------------------------------------------------- MLRPL

def test_decoders_differ_structurally():
    net = DualDecoderVNet(2, 2, base_width=4, dropout=0.0)
    kinds = [{type(m) for m in dec.ups.modules()} for dec in net.decoders]
    assert nn.ConvTranspose3d in kinds[0] and nn.Upsample not in kinds[0]
    assert nn.Upsample in kinds[1] and nn.ConvTranspose3d not in kinds[1]
    logits, feats = net.eval()(torch.rand(4, 2, 16, 16, 16))
    assert [t.shape for t in logits] == [(4, 2, 16, 16, 16)] * 2
    assert [t.shape for t in feats] == [(4, 4, 16, 16, 16)] * 2
    assert not torch.allclose(logits[0], logits[1])


def test_reliability_is_zero_where_student_is_more_confident():
    torch.manual_seed(0)
    p_i = torch.softmax(torch.randn(2, 3, 4, 4, 4) * 3, 1)
    p_j = torch.softmax(torch.randn(2, 3, 4, 4, 4) * 3, 1)
    feat = torch.rand(2, 5, 4, 4, 4, requires_grad=True)
    r, mask = reliability(p_i, p_j, feat)
    student_more_confident = entropy_map(p_i) <= entropy_map(p_j)
    assert student_more_confident.any() and (~student_more_confident).any()
    assert torch.all(r[student_more_confident] == 0)
    assert torch.all(mask[student_more_confident] == 0)
    assert torch.all(mask[~student_more_confident] == 1)
    assert (r[~student_more_confident] > 0).any() and torch.all(r <= 1)
    assert not r.requires_grad and r.grad_fn is None


def test_prototypes_are_unit_norm_and_class_means():
    torch.manual_seed(0)
    feat = torch.rand(2, 6, 4, 4, 4)
    pseudo = torch.randint(0, 3, (2, 4, 4, 4))
    protos = class_prototypes(feat, pseudo, 3)
    assert protos.shape == (2, 3, 6)
    assert torch.allclose(protos.norm(dim=-1), torch.ones(2, 3), atol=1e-5)
    mean = feat[1][:, pseudo[1] == 2].mean(1)
    assert torch.allclose(protos[1, 2], mean / mean.norm(), atol=1e-5)


def test_absent_class_gives_zero_prototype_and_finite_loss():
    torch.manual_seed(0)
    logits_t = torch.zeros(2, 2, 4, 4, 4)
    logits_t[:, 0] = 4.0  # teacher predicts background everywhere: no class-1 prototype
    protos = class_prototypes(torch.rand(2, 5, 4, 4, 4), logits_t.argmax(1), 2)
    assert torch.all(protos[:, 1] == 0) and torch.isfinite(protos).all()
    logits_s = torch.zeros(2, 2, 4, 4, 4, requires_grad=True)  # maximal entropy: mask = 1
    loss, mean_r = reliable_pseudo_label_loss(logits_s, logits_t, torch.rand(2, 5, 4, 4, 4))
    assert torch.isfinite(loss) and float(loss.detach()) > 0 and 0 < float(mean_r) <= 1
    (grad,) = torch.autograd.grad(loss, logits_s)
    assert torch.isfinite(grad).all()


def test_pseudo_label_loss_only_teaches_the_student():
    logits_s = torch.randn(1, 2, 4, 4, 4, requires_grad=True)
    logits_t = (torch.randn(1, 2, 4, 4, 4) * 5).requires_grad_()
    feat_t = torch.rand(1, 3, 4, 4, 4, requires_grad=True)
    loss, _ = reliable_pseudo_label_loss(logits_s, logits_t, feat_t)
    g_s, g_t, g_f = torch.autograd.grad(loss, [logits_s, logits_t, feat_t], allow_unused=True)
    assert g_s is not None and g_s.abs().sum() > 0
    assert g_t is None and g_f is None


def test_mlrpl_outputs_and_losses():
    torch.manual_seed(0)
    method = MLRPL(_ctx("mlrpl"))
    image = torch.rand(4, 2, 16, 16, 16)
    label = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    label[:, 4:10, 4:10, 4:10] = 1
    losses = method.training_losses(image, label, 50)
    assert {"loss", "sup", "unsup", "unsup_weight", "reliability"} <= set(losses)
    expected = losses["sup"] + losses["unsup_weight"] * losses["unsup"]
    assert torch.allclose(losses["loss"], expected)
    method.eval()
    with torch.no_grad():
        out = method.output_probabilities(image[:1])
        logits, _ = method.net(image[:1])
    assert set(out) == {"prediction", "mean_decoders"}
    assert torch.allclose(out["prediction"], torch.softmax(logits[0], 1), atol=1e-6)
    both = (torch.softmax(logits[0], 1) + torch.softmax(logits[1], 1)) / 2
    assert torch.allclose(out["mean_decoders"], both, atol=1e-6)
