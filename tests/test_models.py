"""Tests of duetseg.models on tiny random volumes (w = 4, 16³ / 32×32×16)."""

from __future__ import annotations

import pytest
import torch

from duetseg.models import (
    CrossModalEnhancement,
    Decoder,
    DuetNet,
    Encoder,
    PerBranchEnhancement,
    VNet,
    count_parameters,
    ensemble_probabilities,
)

SHAPE = (32, 32, 16)


def tiny(**kwargs) -> dict:
    """DuetNet keyword arguments with ``base_width = 4``."""
    return {"base_width": 4, **kwargs}


def make_input(k: int, shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, k, *shape, generator=gen)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("fusion", ["gate_residual", "gate", "add", "none"])
@pytest.mark.parametrize("mae_softmax", ["kernels", "modalities"])
def test_duetnet_output_shapes(k: int, fusion: str, mae_softmax: str) -> None:
    torch.manual_seed(0)
    model = DuetNet(k, 3, **tiny(fusion=fusion, mae_softmax=mae_softmax))
    out = model(make_input(k))
    assert len(out) == k
    for logits in out:
        assert logits.shape == (2, 3, *SHAPE)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("mae", [True, False])
@pytest.mark.parametrize("on_skips", [True, False])
def test_duetnet_norm_and_mae_options(norm: str, mae: bool, on_skips: bool) -> None:
    model = DuetNet(2, 2, **tiny(norm=norm, mae=mae, mae_on_skips=on_skips))
    out = model(make_input(2))
    assert [o.shape for o in out] == [(2, 2, *SHAPE)] * 2
    norm_type = torch.nn.BatchNorm3d if norm == "batch" else torch.nn.InstanceNorm3d
    assert any(isinstance(m, norm_type) for m in model.modules())


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_vnet_output_shape(norm: str) -> None:
    model = VNet(2, 4, base_width=4, norm=norm)
    assert model(make_input(2)).shape == (2, 4, *SHAPE)


@pytest.mark.parametrize("shape", [(24, 32, 16), (32, 32, 8)])
def test_size_not_divisible_by_16_raises(shape: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="divisible by 16"):
        DuetNet(2, 2, **tiny())(make_input(2, shape))
    with pytest.raises(ValueError, match="divisible by 16"):
        VNet(2, 2, base_width=4)(make_input(2, shape))


def test_wrong_channels_and_modalities_raise() -> None:
    with pytest.raises(ValueError, match="input channel"):
        DuetNet(2, 2, **tiny())(make_input(3))
    with pytest.raises(ValueError, match="at least 2"):
        DuetNet(1, 2, **tiny())


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("reading", ["kernels", "modalities"])
def test_mae_weights_sum_to_one(k: int, reading: str) -> None:
    model = DuetNet(k, 2, **tiny(mae_softmax=reading))
    model(make_input(k))
    mae = model.bottleneck_mae
    channels = model.encoders[0].channels[-1]
    if reading == "kernels":
        assert isinstance(mae, PerBranchEnhancement)
        weights = mae.last_weights
        assert len(weights) == k
        expected_choices = 2
    else:
        assert isinstance(mae, CrossModalEnhancement)
        weights = [mae.last_weights]
        expected_choices = k
    for w in weights:
        assert w.shape == (2, expected_choices, channels)
        assert (w > 0).all()
        torch.testing.assert_close(w.sum(dim=1), torch.ones(2, channels))


def test_cross_modal_equal_weights_is_identity() -> None:
    mae = CrossModalEnhancement(8, 3, reduction=2)
    torch.nn.init.zeros_(mae.heads.weight)
    torch.nn.init.zeros_(mae.heads.bias)
    feats = [torch.randn(2, 8, 4, 4, 4) for _ in range(3)]
    for before, after in zip(feats, mae(feats), strict=True):
        torch.testing.assert_close(before, after)


def _grad_of_branch_wrt_channel0(cfg: dict, branch: int = 1) -> torch.Tensor:
    torch.manual_seed(0)
    model = DuetNet(2, 2, **cfg).eval()
    x = make_input(2).requires_grad_(True)
    model(x)[branch].sum().backward()
    return x.grad[:, 0]


@pytest.mark.parametrize("fusion", ["gate_residual", "gate", "add"])
def test_fusion_couples_branches(fusion: str) -> None:
    grad = _grad_of_branch_wrt_channel0(tiny(fusion=fusion))
    assert grad.abs().sum() > 0


def test_no_fusion_keeps_branches_independent() -> None:
    cfg = tiny(fusion="none", mae_softmax="kernels", mae_on_skips=True)
    grad = _grad_of_branch_wrt_channel0(cfg)
    assert torch.count_nonzero(grad) == 0
    # branch 0 does depend on its own modality
    assert _grad_of_branch_wrt_channel0(cfg, branch=0).abs().sum() > 0


def test_cross_modal_mae_couples_branches_without_fusion() -> None:
    grad = _grad_of_branch_wrt_channel0(tiny(fusion="none", mae_softmax="modalities"))
    assert grad.abs().sum() > 0


def test_vnet_parameter_count() -> None:
    n = count_parameters(VNet(1, 2, base_width=16))
    assert 0.95 * 9.4e6 <= n <= 1.05 * 9.4e6


@pytest.mark.parametrize("reading", ["kernels", "modalities"])
def test_backward_reaches_every_parameter(reading: str) -> None:
    cfg = tiny(fusion="gate_residual", mae=True, mae_softmax=reading, mae_on_skips=True)
    model = DuetNet(2, 2, **cfg)
    out = model(make_input(2))
    sum(o.square().mean() for o in out).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_ensemble_is_mean_of_softmaxes() -> None:
    a, b = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    probs = DuetNet.ensemble([a, b])
    torch.testing.assert_close(probs, (a.softmax(1) + b.softmax(1)) / 2)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 4, 4, 4))
    with pytest.raises(ValueError):
        ensemble_probabilities([])


def test_encoder_hook_modifies_skip_and_next_stage() -> None:
    torch.manual_seed(0)
    enc = Encoder(1, base_width=4).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    plain = enc(x)
    hooked = enc(x, hook=lambda s, f: f * 0 if s == 1 else f)
    assert [f.shape[1] for f in plain] == [4, 8, 16, 32, 64]
    torch.testing.assert_close(hooked[0], plain[0])
    assert torch.count_nonzero(hooked[1]) == 0
    assert not torch.allclose(hooked[2], plain[2])


def test_decoder_exposes_stage_features() -> None:
    enc, dec = Encoder(1, 4), Decoder(2, 4, dropout=0.0)
    feats = enc(torch.randn(2, 1, 16, 16, 16))
    stages = dec.decode(feats[-1], feats[:-1])
    assert [tuple(s.shape[1:]) for s in stages] == [
        (32, 2, 2, 2),
        (16, 4, 4, 4),
        (8, 8, 8, 8),
        (4, 16, 16, 16),
    ]
    trilinear = Decoder(2, 4, upsample="trilinear")
    assert trilinear(feats[-1], feats[:-1]).shape == (2, 2, 16, 16, 16)


def test_conv_init_is_kaiming() -> None:
    model = VNet(1, 2, base_width=16)
    conv = model.encoder.blocks[4][0][0]
    fan_in = conv.weight[0].numel()
    expected_std = (2.0 / fan_in) ** 0.5
    assert abs(conv.weight.std().item() - expected_std) / expected_std < 0.05
    assert torch.count_nonzero(conv.bias) == 0


def test_duetnet_branch_input_own_vs_all() -> None:
    """``own``: branch a ignores modality b when there is no fusion; ``all``: it reads it."""
    x = make_input(2)
    x_changed = x.clone()
    x_changed[:, 1] += 1.0
    for branch_input, expect_change in (("own", False), ("all", True)):
        torch.manual_seed(0)
        model = DuetNet(2, 2, **tiny(fusion="none", mae=False, dropout=0.0,
                                       branch_input=branch_input)).eval()
        assert model.encoders[0].in_channels == (2 if branch_input == "all" else 1)
        with torch.no_grad():
            changed = not torch.allclose(model(x)[0], model(x_changed)[0])
        assert changed == expect_change
