"""Multi-modal fusion (MMF): the gate and how each mode applies it, on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from duetseg.models.fusion import (
    FUSION_MODES,
    MultiModalFusion,
    NoFusion,
    build_fusion,
)

C = 3  # channels of each branch feature


def _features(k: int = 2, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, C, 2, 2, 2, generator=gen) for _ in range(k)]


def _constant_gate(mode: str, value: float, k: int = 2) -> MultiModalFusion:
    """A fusion whose gate is ``value`` everywhere: conv2 weights 0, bias logit(value)."""
    fusion = MultiModalFusion(C, k, mode).eval()
    with torch.no_grad():
        fusion.conv2.weight.zero_()
        fusion.conv2.bias.fill_(math.log(value / (1 - value)))
    return fusion


@pytest.mark.parametrize(("mode", "expected"), [
    ("gate_residual", lambda f, g: f + f * g),
    ("gate", lambda f, g: f * g),
    ("add", lambda f, g: f + g),
])
@pytest.mark.parametrize("g", [0.25, 0.5, 0.75])
def test_each_mode_applies_the_gate_to_every_branch(mode, expected, g: float) -> None:
    fusion = _constant_gate(mode, g)
    features = _features()
    with torch.no_grad():
        torch.testing.assert_close(fusion.gate(features), torch.full_like(features[0], g))
        fused = fusion(features)
    assert len(fused) == 2
    for before, after in zip(features, fused, strict=True):
        torch.testing.assert_close(after, expected(before, g))


def test_modes_on_known_values() -> None:
    f = [torch.full((1, C, 2, 2, 2), 2.0), torch.full((1, C, 2, 2, 2), -4.0)]
    results = {}
    for mode in ("gate_residual", "gate", "add"):
        with torch.no_grad():
            results[mode] = [t.flatten()[0].item() for t in _constant_gate(mode, 0.5)(f)]
    assert results == {"gate_residual": [3.0, -6.0], "gate": [1.0, -2.0], "add": [2.5, -3.5]}


def test_forward_uses_the_gate_method(monkeypatch: pytest.MonkeyPatch) -> None:
    fusion = MultiModalFusion(C, 3, "gate_residual")
    features = _features(3)
    gate = torch.rand_like(features[0])
    monkeypatch.setattr(fusion, "gate", lambda feats: gate)
    for before, after in zip(features, fusion(features), strict=True):
        torch.testing.assert_close(after, before + before * gate)


def test_gate_is_in_zero_one_and_reads_every_branch() -> None:
    torch.manual_seed(0)
    fusion = MultiModalFusion(C, 2).eval()
    features = _features()
    with torch.no_grad():
        g = fusion.gate(features)
        changed = fusion.gate([features[0], features[1] + 1.0])
    assert g.shape == features[0].shape
    assert ((g > 0) & (g < 1)).all()
    assert not torch.allclose(g, changed)


def test_none_is_identity() -> None:
    features = _features()
    fusion = build_fusion("none", C, 2)
    assert isinstance(fusion, NoFusion)
    fused = fusion(features)
    assert fused is not features and all(a is b for a, b in zip(fused, features, strict=True))


def test_build_fusion_modes() -> None:
    assert set(FUSION_MODES) == {"none", "gate_residual", "gate", "add"}
    for mode in FUSION_MODES[1:]:
        fusion = build_fusion(mode, C, 2, norm="instance")
        assert isinstance(fusion, MultiModalFusion) and fusion.mode == mode
        assert isinstance(fusion.conv1[1], torch.nn.InstanceNorm3d)


def test_wrong_branch_count_and_bad_settings_raise() -> None:
    fusion = MultiModalFusion(C, 2)
    with pytest.raises(ValueError, match="expected 2 branch features, got 3"):
        fusion(_features(3))
    with pytest.raises(ValueError, match="expected 2 branch features, got 1"):
        fusion(_features(1))
    with pytest.raises(ValueError, match="at least 2 modalities"):
        MultiModalFusion(C, 1)
    with pytest.raises(ValueError, match="unknown fusion mode 'concat'"):
        build_fusion("concat", C, 2)
