"""Intensity-perturbed unlabelled crops in ``ours`` (``method.options.intensity_view``)."""

from __future__ import annotations

import pytest
import torch
from _ours_views import ours, record_views

from duetseg.methods.perturb import random_intensity
from duetseg.methods.prior_guard import soft_volume_shift
from duetseg.models.blocks import frozen_norm_statistics


def _brain(b: int = 3, c: int = 2) -> torch.Tensor:
    """Crops in [0, 1] with a zero background border."""
    image = torch.zeros(b, c, 16, 16, 16)
    image[:, :, 4:12, 4:12, 4:12] = torch.rand(b, c, 8, 8, 8) * 0.9 + 0.1
    return image


def test_identity_ranges_leave_the_image_unchanged():
    image = _brain()
    out = random_intensity(image, gamma=(1.0, 1.0), brightness=(1.0, 1.0), noise=0.0)
    assert torch.allclose(out, image, atol=1e-6)


def test_without_noise_each_channel_keeps_its_order_and_zero_background():
    torch.manual_seed(0)
    image = _brain()
    out = random_intensity(image, noise=0.0)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert not torch.allclose(out, image)
    background = image == 0
    assert torch.all(out[background] == 0)
    for b in range(image.shape[0]):
        for c in range(image.shape[1]):
            order = torch.argsort(image[b, c].flatten(), stable=True)
            assert torch.all(torch.diff(out[b, c].flatten()[order]) >= -1e-6)


def test_z_scored_background_stays_zero_even_with_noise():
    torch.manual_seed(0)
    image = _brain()
    inside = image != 0
    image[inside] = (image[inside] - 0.5) * 4  # z-scored: negative and positive brain values
    out = random_intensity(image, noise=0.1)
    assert torch.all(out[~inside] == 0)
    assert not torch.allclose(out[inside], image[inside])
    for b in range(image.shape[0]):  # the perturbed brain stays inside the scaled range
        for c in range(image.shape[1]):
            x, y = image[b, c][inside[b, c]], out[b, c][inside[b, c]]
            assert y.min() >= x.min() * 1.25 - 1 and y.max() <= x.max() * 1.25 + 1


def test_crops_and_modalities_are_perturbed_independently():
    torch.manual_seed(0)
    image = _brain(b=2).clone()
    image[1] = image[0]
    image[:, 1] = image[:, 0]  # four identical channels
    out = random_intensity(image, noise=0.0)
    flat = out.flatten(2)
    assert not torch.allclose(flat[0, 0], flat[0, 1])  # two modalities of one crop
    assert not torch.allclose(flat[0, 0], flat[1, 0])  # one modality of two crops


def test_constant_channel_is_unchanged_and_draws_repeat_with_the_seed():
    image = _brain(b=2)
    image[1, 0] = 0.0  # a modality zeroed by modality dropout
    torch.manual_seed(3)
    first = random_intensity(image)
    torch.manual_seed(3)
    second = random_intensity(image)
    assert torch.equal(first, second)
    assert torch.all(first[1, 0] == 0)


@pytest.mark.parametrize("kwargs", [{"gamma": (0.0, 1.0)}, {"brightness": (1.2, 1.1)},
                                    {"noise": -0.1}])
def test_invalid_ranges_raise(kwargs):
    with pytest.raises(ValueError, match="invalid ranges"):
        random_intensity(_brain(), **kwargs)
    with pytest.raises(ValueError, match="shape"):
        random_intensity(torch.zeros(4, 4))


def test_ours_learns_on_perturbed_crops_the_predictions_on_clean_ones(monkeypatch):
    torch.manual_seed(0)
    method = ours(intensity_view=True)
    calls, seen_teacher = record_views(method, monkeypatch)
    image = _brain(b=4)
    label = (torch.rand(2, 16, 16, 16) > 0.5).long()
    torch.manual_seed(7)
    method.training_losses(image, label, iteration=99)["loss"].backward()
    torch.manual_seed(7)
    expected = random_intensity(image[2:])  # the same draw as inside the method

    (x_teacher, grad_teacher, out_teacher), (x_student, grad_student, _) = calls
    assert not grad_teacher and grad_student
    assert torch.equal(x_teacher, image)  # the whole batch: batch norm as without views
    assert torch.equal(x_student[:2], image[:2])
    assert torch.equal(x_student[2:], expected)
    # the clean predictions, volume-kept (pseudo_prior: soft, the default)
    clean = soft_volume_shift([out[2:] for out in out_teacher])
    for got, out in zip(seen_teacher[0], clean, strict=True):
        assert torch.equal(got, out)


@pytest.mark.parametrize("consistency", ["mse", "cross_pseudo"])
def test_ours_trains_with_intensity_view_alone_and_with_cutmix(consistency):
    for cutmix in (False, True):
        torch.manual_seed(0)
        method = ours(consistency=consistency, intensity_view=True, cutmix=cutmix)
        losses = method.training_losses(_brain(b=4),
                                        (torch.rand(2, 16, 16, 16) > 0.5).long(), iteration=99)
        assert torch.isfinite(losses["loss"]) and float(losses["unsup"].detach()) > 0
        losses["loss"].backward()
        assert all(p.grad is not None for p in method.net.parameters() if p.requires_grad)


def _norm_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()
            if "running" in k or "num_batches" in k}


def test_frozen_norm_statistics_keeps_running_stats_not_the_batch_normalisation():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 3), torch.nn.BatchNorm3d(3))
    x = torch.randn(2, 2, 6, 6, 6)
    before = _norm_state(net)
    with frozen_norm_statistics(net):
        inside = net(x)
    assert all(torch.equal(before[k], v) for k, v in _norm_state(net).items())
    assert net[1].momentum == 0.1
    outside = net(x)  # still training mode: batch statistics, running stats move
    assert torch.allclose(inside, outside)
    assert not torch.equal(before["1.running_mean"], net[1].running_mean)


def test_the_clean_pass_leaves_the_norm_statistics_to_the_training_batch(monkeypatch):
    torch.manual_seed(0)
    method = ours(intensity_view=True)
    reference = ours(intensity_view=True)
    reference.net.load_state_dict(method.net.state_dict())
    calls, _ = record_views(method, monkeypatch)
    image = _brain(b=4)
    method.training_losses(image, (torch.rand(2, 16, 16, 16) > 0.5).long(), iteration=99)
    reference.net(calls[1][0])  # the student batch alone
    got, want = _norm_state(method.net), _norm_state(reference.net)
    assert all(torch.equal(got[k], want[k]) for k in want)
