"""Contrast inversion: a modality mirrored about its case's mean in some crops."""

from __future__ import annotations

import numpy as np
import pytest
from _tiny_run import train_tiny
from test_intensity_augment import _ds

from duetseg.config import load_config
from duetseg.data.augment import random_contrast_inversion
from duetseg.data.modalities import inversion_channels
from duetseg.errors import ConfigError


def _crop() -> np.ndarray:
    img = np.random.default_rng(0).normal(1.0, 0.5, (2, 6, 6, 4)).astype(np.float32)
    img[:, :2] = 0.0  # background
    return img


def test_an_inverted_channel_is_mirrored_about_its_centre_and_keeps_its_background():
    img = _crop()
    out = random_contrast_inversion(img, np.random.default_rng(0), {1: 1.0}, [0.0, 1.5])
    brain = img[1] != 0
    np.testing.assert_allclose(out[1][brain], 3.0 - img[1][brain], rtol=1e-6)
    assert np.all(out[1][~brain] == 0) and np.array_equal(out[0], img[0])
    assert not np.array_equal(out, img) and np.array_equal(img, _crop())  # a copy


def test_probability_zero_and_an_empty_mapping_change_nothing():
    img = _crop()
    assert random_contrast_inversion(img, np.random.default_rng(0), {}, [0, 0]) is img
    assert random_contrast_inversion(img, np.random.default_rng(0), {0: 0.0}, [0, 0]) is img


def test_the_sampler_inverts_the_chosen_channel_of_every_crop_about_the_case_mean(npy_cache):
    plain, inverted = _ds(npy_cache)[2], _ds(npy_cache, invert_channels={0: 1.0})[2]
    assert plain["cases"] == inverted["cases"]
    assert np.array_equal(plain["label"].numpy(), inverted["label"].numpy())
    p, q = plain["image"].numpy(), inverted["image"].numpy()
    assert np.array_equal(p[:, 1], q[:, 1])
    for b, case in enumerate(plain["cases"]):
        volume = np.load(npy_cache / f"{case}.npy")[0]
        centre = volume[volume != 0].mean()
        brain = p[b, 0] != 0
        np.testing.assert_allclose(q[b, 0][brain], 2 * centre - p[b, 0][brain], rtol=1e-5)


def test_half_the_crops_are_inverted_at_probability_one_half(npy_cache):
    ds, plain = _ds(npy_cache, invert_channels={1: 0.5}), _ds(npy_cache)
    flips = [not np.array_equal(ds[it]["image"][b, 1].numpy(), plain[it]["image"][b, 1].numpy())
             for it in range(40) for b in range(4)]
    assert 0.35 < np.mean(flips) < 0.65
    assert np.array_equal(ds[5]["image"].numpy(), ds[5]["image"].numpy())  # reproducible


def test_the_config_names_modalities_and_bad_ones_are_refused(npy_cache):
    cfg = load_config("cpu_small", ["train.contrast_inversion.t1ce=0.5"])
    assert inversion_channels(cfg.train.contrast_inversion, ["t1ce", "t2"]) == {0: 0.5}
    assert inversion_channels({}, ["t2"]) == {}
    with pytest.raises(ConfigError, match="flair"):
        inversion_channels({"flair": 0.5}, ["t1ce", "t2"])
    with pytest.raises(ConfigError):
        load_config("cpu_small", ["train.contrast_inversion.t1ce=1.5"])
    with pytest.raises(ConfigError, match="invert_channels"):
        _ds(npy_cache, invert_channels={0: -0.1})


def test_a_run_trains_with_a_modality_inverted_and_refuses_one_it_does_not_read(
        tmp_path, synthetic_cache):
    cache = synthetic_cache(tmp_path / "data", n_cases=4, shape=(20, 20, 16))
    run = train_tiny(cache, tmp_path / "run", **{"train.contrast_inversion": {"t1ce": 0.5}})
    assert (run / "checkpoints" / "last.pt").is_file()
    with pytest.raises(ConfigError, match="flair"):
        train_tiny(cache, tmp_path / "bad", **{"train.contrast_inversion": {"flair": 0.5}})
