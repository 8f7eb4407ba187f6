"""Multi-modal baselines MMCML and CMC: independence, sharing, losses and gradient flow."""

import math

import pytest
import torch
from test_all_methods import _batch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.methods import MethodContext
from duetseg.methods.cmc import CMC, nt_xent, soft_dice_dissimilarity
from duetseg.methods.mmcml import MMCML, area_similarity_contrastive, pseudo_label_relearning
from duetseg.models import Decoder, Encoder


def _ctx(name, **method_kwargs):
    return MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                         MethodConfig(name=name, **method_kwargs), max_iterations=100)


# ---------------------------------------------------------------- MMCML


def test_mmcml_networks_are_independent_even_if_config_asks_for_fusion():
    torch.manual_seed(0)
    method = MMCML(_ctx("mmcml"))
    assert method.ctx.model.fusion == "none" and method.ctx.model.mae is False
    x = torch.rand(2, 2, 16, 16, 16, requires_grad=True)
    logits = method.net(x)
    (grad,) = torch.autograd.grad(logits[0].sum(), [x])
    assert grad[:, 1].abs().max() == 0  # branch a never sees modality b
    assert grad[:, 0].abs().max() > 0
    (grad,) = torch.autograd.grad(method.net(x)[1].sum(), [x])
    assert grad[:, 0].abs().max() == 0 and grad[:, 1].abs().max() > 0
    assert set(method.output_probabilities(x.detach())) == {"branch_a", "branch_b", "ensemble"}
    assert method.primary_output == "ensemble"
    assert "t2" in method.describe_outputs()["branch_b"]


def _distinct_predictions(n=4, size=8):
    probs = torch.full((n, 2, size, size, size), 0.0)
    probs[:, 1] = 0.05
    for i in range(n):  # a different foreground blob in every crop
        lo = 2 * (i % 3)
        probs[i, 1, lo:lo + 3, (i * 2) % 5:(i * 2) % 5 + 3, 1:4 + i] = 0.95
    probs[:, 0] = 1 - probs[:, 1]
    return probs


def test_asc_lower_when_modalities_agree_than_when_shuffled():
    p = _distinct_predictions()
    agree = area_similarity_contrastive(p, p)
    shuffled = area_similarity_contrastive(p, p.roll(1, dims=0))
    assert agree < shuffled - 1.0
    # The grid version (areas inside crops) keeps the ordering.
    assert area_similarity_contrastive(p, p, grid=2) < area_similarity_contrastive(
        p, p.roll(1, dims=0), grid=2)
    with pytest.raises(ValueError):
        area_similarity_contrastive(p[:1], p[:1])


def test_prel_teacher_is_lower_supervised_loss_and_gets_no_gradient():
    la = torch.randn(2, 2, 4, 4, 4, requires_grad=True)
    lb = torch.randn(2, 2, 4, 4, 4, requires_grad=True)
    for sups, teacher_expected in (([0.9, 0.3], 1), ([0.2, 0.7], 0)):
        sup_t = [torch.tensor(s, requires_grad=True) for s in sups]
        loss, teacher = pseudo_label_relearning([la, lb], sup_t)
        assert teacher == teacher_expected
        ga, gb = torch.autograd.grad(loss, [la, lb], allow_unused=True)
        student_grad, teacher_grad = (ga, gb) if teacher == 1 else (gb, ga)
        assert teacher_grad is None or teacher_grad.abs().max() == 0
        assert student_grad.abs().max() > 0
    # Soft CE with the student equal to the teacher is the teacher's entropy.
    loss, _ = pseudo_label_relearning([la, la.detach().clone()], [torch.tensor(1.0),
                                                                    torch.tensor(0.0)])
    q = torch.softmax(la.detach(), 1)
    assert torch.allclose(loss, -(q * q.log()).sum(1).mean(), atol=1e-6)


def test_mmcml_training_losses_report_the_documented_teacher():
    torch.manual_seed(0)
    method = MMCML(_ctx("mmcml", rampup_fraction=0.0)).train()
    image, label = _batch()
    losses = method.training_losses(image, label, 0)
    expected = 0 if losses["sup_a"] <= losses["sup_b"] else 1
    assert int(losses["prel_teacher"]) == expected
    assert losses["asc"] > 0 and losses["prel"] > 0
    total = losses["sup"] + 0.1 * losses["asc"] + 1.0 * losses["prel"]
    assert torch.allclose(losses["loss"], total)


# ---------------------------------------------------------------- CMC


def test_cmc_has_one_encoder_and_decoder_shared_by_both_branches():
    torch.manual_seed(0)
    method = CMC(_ctx("cmc")).eval()
    net = method.net
    assert sum(isinstance(m, Encoder) for m in net.modules()) == 1
    assert sum(isinstance(m, Decoder) for m in net.modules()) == 1
    first_conv = net.encoder.blocks[0][0][0].weight
    assert first_conv.shape[1] == 1  # single-channel input per modality
    x = torch.rand(2, 2, 16, 16, 16)
    logits = net(x)
    for lg in logits:  # each branch's output depends on the one shared first conv
        (g,) = torch.autograd.grad(lg.sum(), [first_conv], retain_graph=True)
        assert g.abs().max() > 0
    # Same image in both modalities -> identical branch outputs (same weights, same gate).
    same = net(x[:, :1].repeat(1, 2, 1, 1, 1))
    assert torch.allclose(same[0], same[1], atol=1e-5)
    assert not torch.allclose(logits[0], logits[1], atol=1e-5)
    assert set(method.output_probabilities(x)) == {"branch_a", "branch_b", "ensemble"}


def test_nt_xent_matches_hand_computation():
    za = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    zb = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    tau = 0.5
    z = [v / v.norm() for v in (*za, *zb)]
    expected = 0.0
    for i in range(4):
        pos = (i + 2) % 4
        num = math.exp(float(z[i] @ z[pos]) / tau)
        den = sum(math.exp(float(z[i] @ z[j]) / tau) for j in range(4) if j != i)
        expected += -math.log(num / den) / 4
    assert abs(float(nt_xent(za, zb, tau)) - expected) < 1e-6
    with pytest.raises(ValueError):
        nt_xent(za[:1], zb[:1])


def test_anatomical_consistency_zero_for_identical_predictions():
    p = _distinct_predictions()
    assert float(soft_dice_dissimilarity(p, p)) == pytest.approx(0.0, abs=1e-7)
    assert float(soft_dice_dissimilarity(p, p.roll(1, dims=0))) > 0.3


def test_cmc_consistency_terms_train_the_encoder():
    """The public release's no_grad bug is absent: both terms reach the shared encoder."""
    torch.manual_seed(0)
    method = CMC(_ctx("cmc", rampup_fraction=0.5)).train()
    image, label = _batch()
    losses = method.training_losses(image, label, 0)
    params = list(method.net.encoder.parameters())
    for term in ("semantic", "anatomical"):
        assert losses[term].requires_grad
        grads = torch.autograd.grad(losses[term], params, retain_graph=True, allow_unused=True)
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0, term
    # Schedule: semantic ramps up from ~0, anatomical ramps down from ~1.
    assert float(losses["semantic_weight"]) < 0.01
    assert float(losses["anatomical_weight"]) > 0.99
    late = method.training_losses(image, label, 50)
    assert float(late["semantic_weight"]) == pytest.approx(0.1)
    assert float(late["anatomical_weight"]) == pytest.approx(0.0, abs=1e-6)
