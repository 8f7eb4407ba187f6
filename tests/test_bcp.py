"""BCP: cuboid masks, bidirectional mixing, weighted CE/Dice, the two stages and the teacher."""

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from duetseg.config import MethodConfig, ModelConfig
from duetseg.errors import ConfigError
from duetseg.methods import MethodContext, build_method
from duetseg.methods.bcp import (
    bidirectional_mix,
    cuboid_mask,
    pair_indices,
    part_loss,
    weighted_cross_entropy,
    weighted_dice_loss,
)
from duetseg.methods.losses import SupervisedLoss


def _method(train=False, max_iterations=100, **options):
    """Tiny BCP. By default in eval mode (no dropout; BatchNorm on running statistics), so a
    crop's output does not depend on the rest of its batch and can be recomputed exactly."""
    torch.manual_seed(0)
    ctx = MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                        MethodConfig(name="bcp", options=options), max_iterations)
    return build_method(ctx).train(train)


def _batch(n_unlabeled=2):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2 + n_unlabeled, 2, 16, 16, 16, generator=g)
    label = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    label[:, 4:11, 5:12, 3:10] = 1
    image[:2, 0][label == 1] += 1.0
    return image, label


def _perturb(net, scale=0.05):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * scale)


# ---------------------------------------------------------------- masks and mixing


def test_cuboid_mask_is_a_binary_cuboid_of_the_right_size():
    torch.manual_seed(0)
    mask = cuboid_mask(50, (9, 12, 6), 2 / 3)
    assert mask.dtype == torch.bool and mask.shape == (50, 9, 12, 6)
    starts = []
    for m in mask:
        idx = m.nonzero()
        lo, hi = idx.min(0).values, idx.max(0).values
        assert (hi - lo + 1).tolist() == [6, 8, 4]  # floor(2/3 x side)
        assert int(m.sum()) == 6 * 8 * 4  # the bounding box is full: a cuboid
        starts.append(lo.tolist())
    starts = torch.tensor(starts)
    # Every valid start position along each axis is drawn (no off-by-one).
    for axis, top in enumerate((3, 4, 2)):
        assert set(starts[:, axis].tolist()) == set(range(top + 1))
    assert bool(cuboid_mask(2, (4, 5, 3), 1.0).all())
    assert int(cuboid_mask(1, (2, 2, 2), 0.1).sum()) == 1  # at least one voxel per side


def test_cuboid_mask_uses_the_global_generator():
    torch.manual_seed(7)
    a = cuboid_mask(4, (10, 10, 10), 0.5)
    torch.manual_seed(7)
    assert torch.equal(a, cuboid_mask(4, (10, 10, 10), 0.5))
    assert not torch.equal(a, cuboid_mask(4, (10, 10, 10), 0.5))


def test_bidirectional_mix_takes_each_voxel_from_the_right_source():
    torch.manual_seed(0)
    mask = cuboid_mask(2, (6, 7, 5), 2 / 3)
    x_l, x_u = torch.full((2, 3, 6, 7, 5), 1.0), torch.full((2, 3, 6, 7, 5), 2.0)
    y_l, y_u = torch.full((2, 6, 7, 5), 2), torch.full((2, 6, 7, 5), 1)
    x_in, x_out, y_in, y_out = bidirectional_mix(x_l, y_l, x_u, y_u, mask)
    m = mask.unsqueeze(1).expand_as(x_in)
    assert bool((x_in[m] == 1).all()) and bool((x_in[~m] == 2).all())  # labelled inside
    assert bool((x_out[m] == 2).all()) and bool((x_out[~m] == 1).all())  # unlabelled inside
    assert y_in.dtype == torch.long and y_out.dtype == torch.long
    assert torch.equal(y_in, torch.where(mask, 2, 1))
    assert torch.equal(y_out, torch.where(mask, 1, 2))
    assert bool(((x_in + x_out) == 3).all())  # the two directions are complementary


def test_pairing_covers_every_crop():
    assert [t.tolist() for t in pair_indices(2, 2)] == [[0, 1], [0, 1]]
    assert [t.tolist() for t in pair_indices(2, 3)] == [[0, 1, 0], [0, 1, 2]]
    assert [t.tolist() for t in pair_indices(3, 1)] == [[0, 1, 2], [0, 0, 0]]


# ---------------------------------------------------------------- weighted losses


def test_weighted_losses_equal_the_unweighted_ones_at_unit_weights():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, 7)
    target = torch.randint(0, 3, (2, 5, 6, 7))
    ones = torch.ones(2, 5, 6, 7)
    assert torch.allclose(weighted_cross_entropy(logits, target, ones),
                          F.cross_entropy(logits, target), atol=1e-6)
    monai = DiceLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    assert torch.allclose(weighted_dice_loss(logits, target, ones),
                          monai(logits, target.unsqueeze(1)), atol=1e-6)
    assert torch.allclose(part_loss(logits, target, ones), SupervisedLoss()(logits, target),
                          atol=1e-6)


def test_a_zero_one_weight_map_is_the_loss_on_that_part_only():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8, 8))
    region = torch.zeros(2, 8, 8, 8)
    region[:, 1:6, 2:7, 0:4] = 1
    part = (slice(None), slice(None), slice(1, 6), slice(2, 7), slice(0, 4))
    sub_logits, sub_target = logits[part], target[part[:1] + part[2:]]
    assert torch.allclose(weighted_cross_entropy(logits, target, region),
                          F.cross_entropy(sub_logits, sub_target), atol=1e-6)
    monai = DiceLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    assert torch.allclose(weighted_dice_loss(logits, target, region),
                          monai(sub_logits, sub_target.unsqueeze(1)), atol=1e-6)
    # Scaling the weights does not change either (both are weighted means / ratios) ...
    assert torch.allclose(part_loss(logits, target, 3 * region), part_loss(logits, target, region))
    # ... and voxels of weight 0 do not matter.
    changed = logits + 5 * (1 - region).unsqueeze(1) * torch.randn_like(logits)
    other = torch.where(region.bool(), target, (target + 1) % 3)
    assert torch.allclose(part_loss(changed, other, region), part_loss(logits, target, region))
    zero = torch.zeros_like(region)
    assert float(part_loss(logits, target, zero)) == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------- the method


def test_options_and_pretrain_length():
    assert _method(max_iterations=200).pretrain_iterations == 40
    assert _method(max_iterations=10, pretrain_fraction=0.0).pretrain_iterations == 0
    method = _method()
    assert method.uses_unlabeled and method.primary_output == "prediction"
    assert (method.options.mask_ratio, method.options.unlabeled_weight) == pytest.approx(
        (2 / 3, 0.5))
    with pytest.raises(ConfigError, match="invalid options"):
        _method(mask_ratio=0.0)


def test_stage1_ignores_unlabelled_crops_and_the_teacher_is_the_student_after_it():
    method = _method(train=True, max_iterations=10, pretrain_fraction=0.3)  # 3 stage-1 steps
    image, label = _batch()
    other = image.clone()
    other[2:] = torch.rand_like(other[2:]) * 5
    torch.manual_seed(3)
    a = method.training_losses(image, label, 0)
    torch.manual_seed(3)
    b = method.training_losses(other, label, 0)
    assert torch.equal(a["loss"], b["loss"]) and torch.equal(a["sup"], a["loss"])
    assert float(a["unsup"]) == 0.0 and float(a["unsup_weight"]) == 0.0
    initial = {k: v.clone() for k, v in method.teacher.model.state_dict().items()}
    opt = torch.optim.SGD(list(method.trainable_parameters()), lr=0.05)
    for it in range(3):
        teacher_before = {k: v.clone() for k, v in method.teacher.model.state_dict().items()}
        for k, v in teacher_before.items():  # stage 1 leaves the teacher alone
            assert torch.equal(v, initial[k]), (it, k)
        opt.zero_grad()
        method.training_losses(image, label, it)["loss"].backward()
        opt.step()
        method.after_step(it)
    student = method.net.state_dict()
    for k, v in method.teacher.model.state_dict().items():  # exact copy after the switch
        assert torch.equal(v, student[k]), k
    assert any(not torch.equal(v, initial[k]) for k, v in student.items())
    # Stage 2 starts: pseudo-labelled parts enter; EMA restarts (first update decay 0.5).
    losses = method.training_losses(image, label, 3)
    assert float(losses["unsup"].detach()) > 0 and float(losses["unsup_weight"]) == 0.5
    before = {k: v.clone() for k, v in method.teacher.model.named_parameters()}
    opt.zero_grad()
    losses["loss"].backward()
    opt.step()
    method.after_step(3)
    s_params = dict(method.net.named_parameters())
    for k, v in method.teacher.model.named_parameters():
        assert torch.allclose(v, 0.5 * before[k] + 0.5 * s_params[k].detach(), atol=1e-7), k


def test_stage2_losses_are_the_mixed_part_losses(monkeypatch):
    method = _method(pretrain_fraction=0.0, unlabeled_weight=0.3)
    _perturb(method.teacher.model)  # the pseudo-labels are not the student's
    image, label = _batch()
    torch.manual_seed(0)
    mask = cuboid_mask(2, (16, 16, 16), 2 / 3)
    monkeypatch.setattr(method, "draw_mask", lambda n, shape, device: mask)
    losses = method.training_losses(image, label, 0)
    with torch.no_grad():
        pseudo = method.teacher.model(image[2:]).argmax(1)
        x_in, x_out, y_in, y_out = bidirectional_mix(image[:2], label, image[2:], pseudo, mask)
        assert torch.equal(y_in[mask], label[mask]) and torch.equal(y_in[~mask], pseudo[~mask])
        assert torch.equal(y_out[mask], pseudo[mask]) and torch.equal(y_out[~mask], label[~mask])
        q_in, q_out = method.net(x_in), method.net(x_out)
        m = mask.float()
        sup = part_loss(q_in, y_in, m) + part_loss(q_out, y_out, 1 - m)
        unsup = part_loss(q_in, y_in, 1 - m) + part_loss(q_out, y_out, m)
    assert float(losses["sup"].detach()) == pytest.approx(float(sup), rel=1e-5)
    assert float(losses["unsup"].detach()) == pytest.approx(float(unsup), rel=1e-5)
    # Weight 1 on the ground-truth parts, alpha on the pseudo-labelled parts.
    assert float(losses["unsup_weight"]) == pytest.approx(0.3)
    expected = float(sup) + 0.3 * float(unsup)
    assert float(losses["loss"].detach()) == pytest.approx(expected, rel=1e-6)


def test_alpha_zero_makes_the_loss_independent_of_the_pseudo_labels(monkeypatch):
    image, label = _batch()
    torch.manual_seed(0)
    mask = cuboid_mask(2, (16, 16, 16), 2 / 3)
    values = []
    for scale in (0.0, 0.5):
        method = _method(pretrain_fraction=0.0, unlabeled_weight=0.0)
        _perturb(method.teacher.model, scale)
        monkeypatch.setattr(method, "draw_mask", lambda n, shape, device: mask)
        values.append(method.training_losses(image, label, 0))
    assert not torch.allclose(values[0]["unsup"], values[1]["unsup"])
    assert torch.allclose(values[0]["loss"], values[1]["loss"])


def test_stage2_teacher_gets_no_gradient_and_is_reproducible():
    image, label = _batch(n_unlabeled=3)  # 2 labelled + 3 unlabelled: 3 pairs
    method = _method(train=True, pretrain_fraction=0.0)
    torch.manual_seed(5)
    losses = method.training_losses(image, label, 0)
    torch.manual_seed(5)
    again = method.training_losses(image, label, 0)
    assert torch.equal(losses["loss"], again["loss"])
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is not None for p in method.trainable_parameters())
    # A batch of labelled crops only falls back to the labelled copy-paste.
    only = method.training_losses(image[:2], label, 50)
    assert float(only["unsup"]) == 0.0 and torch.equal(only["loss"], only["sup"])
