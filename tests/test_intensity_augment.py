"""Intensity augmentation (``train.intensity_augment``): the transform and the sampler."""

from __future__ import annotations

import numpy as np
import pytest

from duetseg.config import load_config
from duetseg.data.augment import random_intensity_augment
from duetseg.data.sampling import TwoStreamBatches
from duetseg.errors import ConfigError

CROP = (12, 12, 8)


def _crop(seed: int = 0) -> np.ndarray:
    """Two channels, non-zero inside a box, zero around it (background)."""
    img = np.zeros((2, 16, 16, 10), dtype=np.float32)
    img[:, 3:13, 2:14, 2:8] = np.random.default_rng(seed).random((2, 10, 12, 6)) + 0.1
    return img


def test_transform_keeps_background_and_changes_the_brain():
    img = _crop()
    out = random_intensity_augment(img, np.random.default_rng(1), prob=1.0)
    brain = img != 0
    assert out is not img and out.dtype == img.dtype
    assert np.all(out[~brain] == 0)
    for c in range(2):
        assert not np.allclose(out[c][brain[c]], img[c][brain[c]])
    assert np.array_equal(img, _crop())  # the input is not modified


def test_transform_is_a_function_of_the_generator_and_prob_zero_is_identity():
    img = _crop()
    a = random_intensity_augment(img, np.random.default_rng(5), prob=1.0)
    b = random_intensity_augment(img, np.random.default_rng(5), prob=1.0)
    c = random_intensity_augment(img, np.random.default_rng(6), prob=1.0)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert random_intensity_augment(img, np.random.default_rng(5), prob=0.0) is img


def test_each_channel_is_drawn_independently():
    img = _crop()
    changed = set()
    for seed in range(40):
        out = random_intensity_augment(img, np.random.default_rng(seed), prob=0.5)
        changed.add(tuple(not np.array_equal(out[c], img[c]) for c in range(2)))
    assert {(True, False), (False, True)} <= changed


def test_brightness_and_gamma_ranges_bound_the_change():
    img = _crop()
    brain = img[0] != 0
    out = random_intensity_augment(img, np.random.default_rng(2), prob=1.0,
                                   brightness=(2.0, 2.0), gamma=(1.0, 1.0), noise=0.0)
    np.testing.assert_allclose(out[0][brain], 2.0 * img[0][brain], rtol=1e-6)


def _ds(root, **kw):
    args = dict(labeled=["lab0", "lab1"], unlabeled=["unl0", "unl1"], crop_size=CROP,
                batch_size=4, labeled_bs=2, seed=3)
    return TwoStreamBatches(root, **{**args, **kw})


def test_sampler_augments_images_only_and_stays_reproducible(npy_cache):
    plain, aug = _ds(npy_cache), _ds(npy_cache, intensity_augment=1.0)
    for it in (0, 7):
        p, a = plain[it], aug[it]
        assert p["cases"] == a["cases"]
        assert np.array_equal(p["label"].numpy(), a["label"].numpy())  # same crops
        assert not np.allclose(p["image"].numpy(), a["image"].numpy())
        assert np.array_equal(a["image"].numpy(), aug[it]["image"].numpy())
        # every crop, labelled and unlabelled, is augmented
        assert all(not np.allclose(p["image"][b].numpy(), a["image"][b].numpy())
                   for b in range(4))


def test_sampler_without_the_option_is_unchanged(npy_cache):
    a, b = _ds(npy_cache)[3], _ds(npy_cache, intensity_augment=0.0)[3]
    assert np.array_equal(a["image"].numpy(), b["image"].numpy())


def test_invalid_probability_is_rejected(npy_cache, tmp_path):
    with pytest.raises(ConfigError, match="intensity_augment"):
        _ds(npy_cache, intensity_augment=1.5)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  intensity_augment: -0.1\n")
    with pytest.raises(ConfigError):
        load_config(cfg)
