"""Consistency baselines: EMA teacher, Mean Teacher, ICT and entropy minimisation."""

import math

import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.methods import MethodContext, build_method
from duetseg.methods.ema import EMATeacher, ema_decay
from duetseg.methods.entropy_min import normalized_entropy
from duetseg.methods.ict import pair_unlabeled
from duetseg.methods.mean_teacher import teacher_noise


def _method(name, train=False, **options):
    """Tiny method. By default in eval mode: with no dropout, BatchNorm then uses running
    statistics, so each crop's output does not depend on the rest of its batch (the
    teacher follows the method's mode), which the exact comparisons below need."""
    torch.manual_seed(0)
    ctx = MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                        MethodConfig(name=name, rampup_fraction=0.0, options=options), 100)
    return build_method(ctx).train(train)


def _batch():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(4, 2, 16, 16, 16, generator=g)
    label = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    label[:, 4:11, 5:12, 3:10] = 1
    return image, label


def _perturb(net, scale=0.05):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * scale)


# ---------------------------------------------------------------- EMA teacher


def test_ema_decay_schedule():
    assert ema_decay(0) == 0.0
    assert ema_decay(1) == pytest.approx(0.5)
    assert ema_decay(3) == pytest.approx(0.75)
    assert ema_decay(10_000) == pytest.approx(0.99)


def test_ema_update_is_the_convex_combination_and_copies_buffers():
    method = _method("mean_teacher", train=True)
    student, teacher = method.net, method.teacher
    _perturb(student)
    with torch.no_grad():  # BatchNorm running statistics differ from the teacher's
        student(torch.rand(2, 2, 16, 16, 16))
    teacher.update(student, 0)  # decay 0: the teacher becomes the student
    for (name, t), s in zip(teacher.model.state_dict().items(), student.state_dict().values()):
        assert torch.equal(t, s), name

    before = {k: v.clone() for k, v in teacher.model.named_parameters()}
    _perturb(student)
    student(torch.rand(2, 2, 16, 16, 16))  # train mode: running stats move again
    assert teacher.update(student, 3) == pytest.approx(0.75)
    name, param = next(iter(teacher.model.named_parameters()))
    s_param = dict(student.named_parameters())[name]
    expected = 0.75 * before[name] + 0.25 * s_param.detach()
    assert torch.allclose(param, expected, atol=1e-7)
    assert not torch.allclose(param, s_param) and not torch.allclose(param, before[name])
    for name, t in teacher.model.named_parameters():
        s = dict(student.named_parameters())[name].detach()
        assert torch.allclose(t, 0.75 * before[name] + 0.25 * s, atol=1e-7), name
    bufs = dict(student.named_buffers())
    running = [k for k in bufs if k.endswith("running_mean")]
    assert running
    for name, b in teacher.model.named_buffers():
        assert torch.equal(b, bufs[name]), name


def test_ema_teacher_is_frozen_and_not_trainable():
    method = _method("mean_teacher")
    teacher_ids = {id(p) for p in method.teacher.parameters()}
    trainable_ids = {id(p) for p in method.trainable_parameters()}
    assert teacher_ids and not teacher_ids & trainable_ids
    assert {id(p) for p in method.net.parameters()} == trainable_ids
    assert all(not p.requires_grad for p in method.teacher.parameters())
    assert any(k.startswith("teacher.") for k in method.state_dict())  # checkpointed
    with pytest.raises(ValueError, match="different"):
        EMATeacher(torch.nn.Linear(2, 2)).update(torch.nn.Linear(2, 3, bias=False), 1)


# ---------------------------------------------------------------- Mean Teacher


def test_teacher_noise_is_clipped_gaussian():
    torch.manual_seed(0)
    noise = teacher_noise(torch.zeros(100_000), 0.1, 0.2)
    assert noise.abs().max() <= 0.2 + 1e-7
    assert 0.09 < float(noise.std()) < 0.1  # clipping at 2 sigma shrinks the std a little
    assert torch.equal(teacher_noise(torch.ones(5), 0.0, 0.2), torch.zeros(5))


def test_mean_teacher_consistency_zero_when_teacher_equals_student_without_noise():
    image, label = _batch()
    quiet = _method("mean_teacher", noise_std=0.0)
    assert quiet.training_losses(image, label, 0)["unsup"].item() == pytest.approx(0.0, abs=1e-12)
    noisy = _method("mean_teacher")
    assert noisy.training_losses(image, label, 0)["unsup"].item() > 0
    _perturb(quiet.net)  # student moved, teacher not yet updated
    assert quiet.training_losses(image, label, 0)["unsup"].item() > 1e-8


def test_mean_teacher_no_gradient_reaches_teacher_and_weight_applies():
    image, label = _batch()
    method = _method("mean_teacher")
    losses = method.training_losses(image, label, 0)
    assert losses["loss"].item() == pytest.approx(
        losses["sup"].item() + 0.1 * losses["unsup"].item(), rel=1e-6)
    losses["loss"].backward()
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is not None for p in method.trainable_parameters())


# ---------------------------------------------------------------- ICT


def test_pairing_even_halves_odd_roll():
    u = torch.arange(4.0).view(4, 1)
    a, b = pair_unlabeled(u)
    assert a.flatten().tolist() == [0, 1] and b.flatten().tolist() == [2, 3]
    a, b = pair_unlabeled(torch.arange(3.0).view(3, 1))
    assert a.flatten().tolist() == [0, 1, 2] and b.flatten().tolist() == [2, 0, 1]


def test_ict_lambda_is_beta_and_reproducible():
    method = _method("ict")
    torch.manual_seed(5)
    first = method.sample_lambda(2000)
    torch.manual_seed(5)
    assert torch.equal(first, method.sample_lambda(2000))
    assert float(first.min()) >= 0 and float(first.max()) <= 1
    assert float(first.mean()) == pytest.approx(0.5, abs=0.05)
    # Beta(0.2, 0.2) is U-shaped: most mass near 0 and 1.
    assert float(((first < 0.1) | (first > 0.9)).float().mean()) > 0.5


def test_ict_target_is_the_mix_of_teacher_softmaxes(monkeypatch):
    image, _ = _batch()
    method = _method("ict")
    _perturb(method.teacher.model)
    monkeypatch.setattr(method, "sample_lambda", lambda n: torch.full((n,), 0.3))
    u = image[2:]
    mixed, target, lam = method.mix(u)
    assert lam.tolist() == pytest.approx([0.3])
    assert torch.allclose(mixed, 0.3 * u[:1] + 0.7 * u[1:], atol=1e-6)
    with torch.no_grad():
        p0 = torch.softmax(method.teacher.model(u[:1]), 1)
        p1 = torch.softmax(method.teacher.model(u[1:]), 1)
    assert torch.allclose(target, 0.3 * p0 + 0.7 * p1, atol=1e-5)
    assert not target.requires_grad


def test_ict_lambda_one_is_plain_teacher_consistency_on_u1(monkeypatch):
    image, label = _batch()
    method = _method("ict")
    _perturb(method.net)  # teacher != student so the term is not trivially zero
    monkeypatch.setattr(method, "sample_lambda", lambda n: torch.ones(n))
    losses = method.training_losses(image, label, 0)
    with torch.no_grad():
        student = torch.softmax(method.net(image[2:3]), 1)
        teacher = torch.softmax(method.teacher.model(image[2:3]), 1)
    expected = torch.mean((student - teacher) ** 2)
    assert float(expected) > 0
    assert losses["unsup"].item() == pytest.approx(float(expected), rel=1e-4)
    losses["loss"].backward()
    assert all(p.grad is None for p in method.teacher.parameters())


def test_ict_odd_unlabelled_count():
    image, label = _batch()
    extra = torch.cat([image, image[2:3] * 0.5], 0)  # 2 labelled + 3 unlabelled
    method = _method("ict")
    mixed, target, lam = method.mix(extra[2:])
    assert mixed.shape == extra[2:].shape and target.shape[0] == 3 and lam.shape == (3,)
    assert torch.isfinite(method.training_losses(extra, label, 0)["loss"])


# ---------------------------------------------------------------- entropy minimisation


def test_normalized_entropy_bounds():
    uniform = torch.full((1, 3, 2, 2, 2), 1 / 3)
    assert torch.allclose(normalized_entropy(uniform), torch.ones(1, 2, 2, 2), atol=1e-6)
    onehot = torch.zeros(1, 3, 2, 2, 2)
    onehot[:, 1] = 1
    assert float(normalized_entropy(onehot).max()) < 1e-6
    logits = torch.tensor([[30.0, -30.0]]).view(1, 2, 1, 1, 1)
    ent = normalized_entropy(torch.softmax(logits, 1), torch.log_softmax(logits, 1))
    assert float(ent) < 1e-6
    p = torch.tensor([0.25, 0.75]).view(1, 2, 1)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) / math.log(2)
    assert float(normalized_entropy(p)) == pytest.approx(h, rel=1e-6)
    with pytest.raises(ValueError, match="2 classes"):
        normalized_entropy(torch.ones(1, 1, 2))


def test_entropy_option_selects_crops():
    image, label = _batch()
    changed = image.clone()
    changed[:2] = torch.rand_like(changed[:2])  # only the labelled crops change
    unl = _method("entropy_min", on="unlabeled")
    with torch.no_grad():
        a = unl.training_losses(image, label, 0)["unsup"]
        b = unl.training_losses(changed, label, 0)["unsup"]
    assert torch.allclose(a, b, atol=1e-7)
    allc = _method("entropy_min")
    assert allc.options.on == "all"
    with torch.no_grad():
        a = allc.training_losses(image, label, 0)
        b = allc.training_losses(changed, label, 0)["unsup"]
        expected = normalized_entropy(torch.softmax(allc.net(image), 1)).mean()
    assert not torch.allclose(a["unsup"], b, atol=1e-7)
    assert float(a["unsup"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(a["loss"]) == pytest.approx(float(a["sup"]) + 0.1 * float(a["unsup"]), rel=1e-6)
