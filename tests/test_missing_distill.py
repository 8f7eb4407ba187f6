"""ours' ``missing_distill``: crops that lost an input learn the full-input prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.data.sampling import TwoStreamBatches
from duetseg.methods import MethodContext, build_method
from duetseg.methods.missing_distill import full_input_distillation

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sampler_keeps_the_batch_before_dropout(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b", "u"):
        np.save(tmp_path / f"{name}.npy", (rng.random((2, 14, 14, 10)) + 0.5).astype("f4"))
        np.save(tmp_path / f"{name}_seg.npy", (rng.random((14, 14, 10)) > 0.5).astype("u1"))
    args = (tmp_path, ["a", "b"], ["u"], (12, 12, 8), 4, 2)
    plain = TwoStreamBatches(*args, seed=1)
    dropped = TwoStreamBatches(*args, seed=1, modality_dropout=0.7)
    assert "image_full" not in plain[0]
    lost = 0
    for it in range(6):
        a, b = plain[it], dropped[it]
        assert torch.equal(b["image_full"], a["image"])
        assert (b["image"][~b["present"]] == 0).all()
        lost += int((~b["present"]).sum())
    assert lost > 0


def _recording_loss(calls):
    def loss_fn(logits, target):
        calls.append((logits, target))
        return logits.float().mean() * 0 + target.float().mean() + logits.sum() * 1e-3
    return loss_fn


def test_distillation_targets_rows_weights_and_gradient():
    g = torch.Generator().manual_seed(0)
    student = [torch.randn(4, 2, 3, 3, 3, generator=g, requires_grad=True) for _ in range(2)]
    teacher = [torch.randn(4, 2, 3, 3, 3, generator=g) for _ in range(2)]
    present = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 0]], dtype=torch.bool)
    calls = []
    loss = full_input_distillation(student, teacher, present, _recording_loss(calls))
    ensemble = (torch.softmax(teacher[0], 1) + torch.softmax(teacher[1], 1)).argmax(1)
    # branch 0 learns crops 1 and 3, branch 1 crop 2; crop 0 kept both inputs
    assert [c[0].shape[0] for c in calls] == [2, 1]
    assert torch.equal(calls[0][1], ensemble[[1, 3]])
    assert torch.equal(calls[1][1], ensemble[[2]])
    expected = sum(c[1].float().mean() + c[0].sum().detach() * 1e-3 for c in calls[:1]) * 0.5 \
        + (calls[1][1].float().mean() + calls[1][0].sum().detach() * 1e-3) * 0.25
    assert torch.isclose(loss, expected)
    loss.backward()
    assert (student[0].grad[[1, 3]] != 0).all() and (student[0].grad[[0, 2]] == 0).all()
    assert (student[1].grad[2] != 0).all() and (student[1].grad[[0, 1, 3]] == 0).all()


def test_distillation_is_a_connected_zero_when_every_input_is_present():
    student = [torch.randn(2, 2, 3, 3, 3, requires_grad=True) for _ in range(2)]
    loss = full_input_distillation(student, [s.detach() for s in student],
                                   torch.ones(2, 2, dtype=torch.bool), _recording_loss([]))
    assert float(loss.detach()) == 0.0 and loss.requires_grad


def _ours(**options):
    torch.manual_seed(0)
    model = ModelConfig(base_width=2, dropout=0.0, fusion="none", mae=False)
    ctx = MethodContext(("t1ce", "t2"), 2, model,
                        MethodConfig(name="ours", rampup_fraction=0.0, options=options), 100)
    return build_method(ctx).eval()


def _input_grad(method, full, dropped, label, present, give_full=True):
    image = dropped.clone().requires_grad_()
    method.set_present(present, full if give_full else None)
    loss = method.training_losses(image, label, 50)["loss"]
    (grad,) = torch.autograd.grad(loss, [image])
    return grad.abs().flatten(2).amax(2)


def test_ours_teaches_the_lone_branch_of_an_unlabelled_crop():
    g = torch.Generator().manual_seed(2)
    full = torch.rand(4, 2, 16, 16, 16, generator=g) + 0.1
    present = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 1]], dtype=torch.bool)
    dropped = full.clone()
    dropped[~present] = 0.0
    label = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    label[:, 4:11, 5:12, 3:10] = 1
    plain = _input_grad(_ours(), full, dropped, label, present)
    distil = _input_grad(_ours(missing_distill=True), full, dropped, label, present)
    assert (plain[2] == 0).all()  # one branch left: no consistency without the option
    assert distil[2, 0] > 0 and distil[2, 1] == 0  # the present input learns, not the blank
    # without the batch before dropout the option changes nothing
    method = _ours(missing_distill=True)
    none = _input_grad(method, full, dropped, label, present, give_full=False)
    assert torch.equal(none, plain)
    method.set_present(None, full)
    assert method.full_input(dropped) is None  # nothing absent: nothing kept


def test_full_input_follows_the_batch_device_dtype_and_memory_format():
    method = _ours(missing_distill=True)
    full = torch.rand(2, 2, 4, 4, 4)
    method.set_present(torch.tensor([[1, 0], [1, 1]], dtype=torch.bool), full)
    like = torch.zeros(2, 2, 4, 4, 4).contiguous(memory_format=torch.channels_last_3d)
    out = method.full_input(like)
    assert torch.equal(out, full) and out.is_contiguous(memory_format=torch.channels_last_3d)
    assert method.full_input(torch.zeros(2, 2, 4, 4, 4)).is_contiguous()
    assert method.full_input(like.double()).dtype == torch.float64
