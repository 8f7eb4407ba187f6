"""Pseudo-label volumes held at the branches' early estimate (``pseudo_prior: anchor``)."""

from __future__ import annotations

import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.errors import ConfigError
from duetseg.methods import MethodContext, build_method
from duetseg.methods.prior_guard import soft_volume_shift
from duetseg.methods.volume_anchor import VolumeAnchor

pytestmark = pytest.mark.usefixtures("one_thread")


def _logits(tumour_bias: float, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lg = torch.randn(2, 2, 8, 8, 8, generator=gen) * 2
    lg[:, 1] += tumour_bias
    return [lg, lg.flip(0)]


def _tumour(pseudo: list[torch.Tensor]) -> float:
    return float(sum((lg.argmax(1) == 1).sum() for lg in pseudo)) / sum(
        lg[:, 0].numel() for lg in pseudo)


def test_the_window_records_and_changes_nothing():
    anchor = VolumeAnchor(2, start=2, stop=4)
    for it in range(4):
        logits = _logits(-2.0, it)
        pseudo = anchor.pseudo_logits(logits, it)
        for got, want in zip(pseudo, soft_volume_shift(logits)):
            assert torch.equal(got, want)  # plain soft volumes until the window ends
        anchor.update(pseudo, it)
        if it == 1:
            assert float(anchor.recorded.sum()) == 0  # before the window: nothing recorded
    expected = sum(_tumour(soft_volume_shift(_logits(-2.0, it))) for it in (2, 3)) / 2
    assert float(anchor.recorded[1] / anchor.recorded.sum()) == pytest.approx(expected)
    assert not anchor.holding(3) and anchor.holding(4)


@pytest.mark.parametrize("drift", [+1.5, -1.5])
def test_after_the_window_a_drifting_volume_is_pulled_back(drift):
    anchor = VolumeAnchor(2, start=0, stop=5, rate=0.1)
    for it in range(5):
        anchor.update(anchor.pseudo_logits(_logits(-2.0, it), it), it)
    recorded = float(anchor.recorded[1] / anchor.recorded.sum())
    drifted = [_tumour(soft_volume_shift(_logits(-2.0 + drift, 100 + it))) for it in range(5)]
    held = []
    for it in range(5, 200):
        pseudo = anchor.pseudo_logits(_logits(-2.0 + drift, 100 + it), it)
        anchor.update(pseudo, it)
        held.append(_tumour(pseudo))
    assert float(anchor.target[1]) == pytest.approx(recorded, rel=1e-5)
    assert abs(sum(drifted) / 5 - recorded) > 0.05  # the drift is real ...
    assert abs(sum(held[-20:]) / 20 - recorded) < 0.02  # ... and the anchor undoes it
    assert float(anchor.guard.bias[1]) * drift < 0


def test_a_resumed_anchor_continues_exactly():
    def run(steps, anchor):
        for it in steps:
            anchor.update(anchor.pseudo_logits(_logits(-1.0 + it / 20, it), it), it)
        return anchor
    whole = run(range(30), VolumeAnchor(2, 3, 10))
    first = run(range(12), VolumeAnchor(2, 3, 10))
    resumed = VolumeAnchor(2, 3, 10)
    resumed.load_state_dict(first.state_dict())
    run(range(12, 30), resumed)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def _ctx(**options) -> MethodContext:
    return MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                         MethodConfig(name="ours", options=options), 100)


def test_ours_with_the_anchor_trains_and_checks_its_options():
    torch.manual_seed(0)
    method = build_method(_ctx(pseudo_prior="anchor", anchor_window=[0.1, 0.3]))
    assert (method.anchor.start, method.anchor.stop) == (10, 30)
    assert "anchor.recorded" in method.state_dict()
    image = torch.rand(4, 2, 16, 16, 16)
    label = (torch.rand(2, 16, 16, 16) > 0.5).long()
    for it in (0, 15, 30):
        losses = method.training_losses(image, label, iteration=it)
        losses["loss"].backward()
        assert torch.isfinite(losses["loss"]) and "prior_bias" in losses
    assert float(method.anchor.recorded.sum()) == 2 * 2 * 16 ** 3  # iteration 15 only
    assert int(method.anchor.guard.steps) == 1  # iteration 30 steered
    for bad in ([0.3, 0.1], [0.0, 1.5]):
        with pytest.raises(ConfigError, match="anchor_window"):
            build_method(_ctx(pseudo_prior="anchor", anchor_window=bad))
    with pytest.raises(ConfigError, match="pseudo_prior"):
        build_method(_ctx(consistency="mse", pseudo_prior="anchor"))
    assert build_method(_ctx(pseudo_prior="anchor", mcml=False)).anchor is None


def test_the_cap_brakes_growth_and_leaves_a_smaller_volume_alone():
    for drift, bias_moves in ((+1.5, True), (-1.5, False)):
        anchor = VolumeAnchor(2, start=0, stop=5, rate=0.1, cap_only=True)
        for it in range(5):
            anchor.update(anchor.pseudo_logits(_logits(-2.0, it), it), it)
        for it in range(5, 100):
            anchor.update(anchor.pseudo_logits(_logits(-2.0 + drift, 100 + it), it), it)
        assert (float(anchor.guard.bias[1]) < 0) == bias_moves
        assert float(anchor.guard.bias[1]) <= 0
    assert build_method(_ctx(pseudo_prior="anchor_cap")).anchor.guard.cap_only
