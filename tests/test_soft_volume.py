"""Pseudo-labels that keep the source branch's expected volume (``pseudo_prior: soft``)."""

from __future__ import annotations

import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.errors import ConfigError
from duetseg.methods import MethodContext, build_method
from duetseg.methods.losses import foreground_fraction
from duetseg.methods.soft_volume import soft_volume_shift

pytestmark = pytest.mark.usefixtures("one_thread")


def _counts(logits: torch.Tensor) -> torch.Tensor:
    c = logits.shape[1]
    return torch.stack([torch.bincount(lg.argmax(0).flatten(), minlength=c) for lg in logits])


@pytest.mark.parametrize("offset", [-2.5, 0.0, 2.5])
def test_two_class_pseudo_labels_count_the_soft_volume_exactly(offset):
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 8, 8, 8) + torch.tensor([0.0, offset]).view(1, 2, 1, 1, 1)
    logits.requires_grad_(True)
    (shifted,) = soft_volume_shift([logits])
    assert not shifted.requires_grad
    soft = torch.softmax(logits.detach(), 1)[:, 1].sum((1, 2, 3)).round().long()
    assert torch.equal(_counts(shifted)[:, 1], soft)
    # an unsure tumour (probabilities below 0.5) keeps its expected size, not the argmax's
    if offset < 0:
        assert bool((_counts(shifted)[:, 1] > _counts(logits.detach())[:, 1]).all())


def test_voxels_keep_their_ranking_by_margin():
    margin = torch.tensor([-4.0, -1.0, -0.2, 0.1, 3.0])
    logits = torch.stack([torch.zeros_like(margin), margin])[None]
    (shifted,) = soft_volume_shift([logits])
    k = int(torch.sigmoid(margin).sum().round())
    assert shifted.argmax(1)[0].tolist() == [0] * (5 - k) + [1] * k


def test_confident_crops_keep_their_argmax():
    torch.manual_seed(1)
    logits = torch.randn(2, 2, 6, 6, 6).sign() * 20.0
    (shifted,) = soft_volume_shift([logits])
    assert torch.equal(shifted.argmax(1), logits.argmax(1))


def test_more_classes_come_close_to_the_soft_volumes():
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 10, 10, 10) * 2 - torch.tensor([0.0, 1.5, 2.0, 2.5]).view(
        1, 4, 1, 1, 1)
    (shifted,) = soft_volume_shift([logits])
    soft = torch.softmax(logits, 1).sum((2, 3, 4))
    before = (_counts(logits) - soft).abs()[:, 1:].sum()
    after = (_counts(shifted) - soft).abs()[:, 1:].sum()
    assert after < 0.2 * before


def _ctx(**options) -> MethodContext:
    return MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                         MethodConfig(name="ours", options=options), 100)


def test_ours_learns_the_other_branch_s_volume_matched_labels(monkeypatch):
    torch.manual_seed(0)
    method = build_method(_ctx())  # the default
    assert method.options.pseudo_prior == "soft"
    calls = []

    def spy(logits):
        shifted = soft_volume_shift(logits)
        calls.append((logits, shifted))
        return shifted

    monkeypatch.setattr("duetseg.methods.ours.soft_volume_shift", spy)
    image = torch.rand(4, 2, 16, 16, 16)
    label = (torch.rand(2, 16, 16, 16) > 0.5).long()
    losses = method.training_losses(image, label, iteration=99)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and len(calls) == 1
    (source, shifted), = calls
    assert [lg.shape[0] for lg in source] == [2, 2]  # the unlabelled crops of each branch
    for before, after in zip(source, shifted):
        soft = torch.softmax(before.detach(), 1)[:, 1].sum((1, 2, 3)).round()
        assert torch.equal(_counts(after)[:, 1].to(soft), soft)
    # the logged tumour fraction is that of the pseudo-labels the branches learn from
    tumour = sum(_counts(after)[:, 1].sum() for after in shifted) / (2 * 2 * 16 ** 3)
    assert float(losses["pseudo_fg"]) == pytest.approx(float(tumour))
    with pytest.raises(ConfigError, match="pseudo_prior"):
        build_method(_ctx(consistency="mse", pseudo_prior="soft"))
    # unset with mse: no hard labels to shift, so "off"
    assert build_method(_ctx(consistency="mse")).options.pseudo_prior == "off"
    for off in ("off", False):  # False: YAML 1.1's reading of an unquoted `off`
        assert build_method(_ctx(pseudo_prior=off)).options.pseudo_prior == "off"


def test_foreground_fraction_counts_every_foreground_class_over_branches():
    a = torch.zeros(1, 3, 2, 2, 1)
    a[0, 1, 0, 0, 0] = a[0, 2, 1, 0, 0] = 5.0  # 2 of 4 voxels foreground (two classes)
    b = torch.zeros(1, 3, 2, 2, 1)  # ties: argmax is the first class, background
    assert float(foreground_fraction([a, b])) == pytest.approx(0.25)
