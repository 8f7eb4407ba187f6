"""Normalisation schemes, label mapping and the per-case preprocessing pipeline."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from _nifti import LPS, PERMUTED, RAS, make_brats

from duetseg.config import NormalizationConfig, PrepareConfig
from duetseg.data.cache import load_original_label
from duetseg.data.discovery import discover_cases
from duetseg.data.normalize import normalize
from duetseg.data.preprocess import map_labels, preprocess_case
from duetseg.errors import ConfigError, InputError


@pytest.fixture
def image():
    rng = np.random.default_rng(1)
    arr = np.zeros((10, 10, 10), dtype=np.float32)
    arr[2:8, 2:8, 2:8] = rng.normal(50.0, 10.0, (6, 6, 6))
    arr[5, 5, 5] = 500.0  # outlier
    return arr


def test_minmax(image):
    out = normalize(image, NormalizationConfig(scheme="minmax"))
    fg = image != 0
    assert out.dtype == np.float32
    assert np.all(out[~fg] == 0)
    assert out[fg].min() == pytest.approx(0.0) and out[fg].max() == pytest.approx(1.0)
    lo, hi = image[fg].min(), image[fg].max()
    assert np.allclose(out[fg], (image[fg] - lo) / (hi - lo), atol=1e-6)


def test_percentile_minmax_clips_outlier(image):
    cfg = NormalizationConfig(scheme="percentile_minmax", lower_percentile=1, upper_percentile=99)
    out = normalize(image, cfg)
    fg = image != 0
    hi = np.percentile(image[fg], 99)
    assert out[5, 5, 5] == pytest.approx(1.0)
    assert out[fg].min() == pytest.approx(0.0)
    assert np.mean(out[fg] == 1.0) < 0.05  # only the clipped top percent saturates
    assert np.all(out[~fg] == 0) and image[5, 5, 5] > hi


def test_zscore_nonzero(image):
    out = normalize(image, NormalizationConfig(scheme="zscore_nonzero"))
    fg = image != 0
    assert out[fg].mean() == pytest.approx(0.0, abs=1e-5)
    assert out[fg].std() == pytest.approx(1.0, abs=1e-4)
    assert np.all(out[~fg] == 0)


def test_ct_window():
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0], dtype=np.float32).reshape(5, 1, 1)
    out = normalize(hu, NormalizationConfig(scheme="ct_window", window_level=40,
                                            window_width=400))
    assert np.allclose(out.ravel(), [0.0, 0.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize("scheme", ["minmax", "percentile_minmax", "zscore_nonzero"])
def test_constant_and_empty_images_are_finite(scheme):
    const = np.full((4, 4, 4), 7.0, dtype=np.float32)
    out = normalize(const, NormalizationConfig(scheme=scheme))
    assert np.isfinite(out).all()
    assert np.all(out == (0.0 if scheme == "zscore_nonzero" else 1.0))
    assert np.all(normalize(np.zeros((3, 3, 3)), NormalizationConfig(scheme=scheme)) == 0)


def test_mask_argument(image):
    mask = np.zeros(image.shape, dtype=bool)
    mask[2:5] = True
    out = normalize(image, NormalizationConfig(scheme="minmax"), mask=mask)
    assert np.all(out[~mask] == 0) and out[mask].max() == pytest.approx(1.0)


def test_map_labels():
    lab = np.array([0, 1, 2, 4, 4], dtype=np.int16)
    assert map_labels(lab, "whole_tumour", 2, "c", "f").tolist() == [0, 1, 1, 1, 1]
    assert map_labels(lab, "tumour_core", 2, "c", "f").tolist() == [0, 1, 0, 1, 1]
    assert map_labels(lab, "enhancing_tumour", 2, "c", "f").tolist() == [0, 0, 0, 1, 1]
    assert map_labels(lab - (lab == 4), "tumour_core", 2, "c", "f").tolist() == [0, 1, 0, 1, 1]
    out = map_labels(lab.astype(np.float32), {0: 0, 1: 1, 2: 0, 4: 1}, 2, "c", "f")
    assert out.dtype == np.uint8 and out.tolist() == [0, 1, 0, 1, 1]
    assert map_labels(lab, "identity", 5, "c", "f").tolist() == [0, 1, 2, 4, 4]
    with pytest.raises(InputError, match=r"case 'c9'.*seg.nii.gz.*\[2, 4\]"):
        map_labels(lab, "identity", 2, "c9", "seg.nii.gz")
    with pytest.raises(InputError, match=r"case 'c9'.*\[4\]"):
        map_labels(lab, {"0": 0, "1": 1, "2": 1}, 2, "c9", "seg.nii.gz")
    with pytest.raises(ConfigError):
        map_labels(lab, {0: 0, 1: 1, 2: 5, 4: 1}, 2, "c", "f")
    # The CLI form `1:1,2:1,4:2` leaves background implicit: 0 stays 0.
    assert map_labels(lab, {1: 1, 2: 1, 4: 2}, 3, "c", "f").tolist() == [0, 1, 1, 2, 2]
    with pytest.raises(InputError, match="non-integer"):
        map_labels(np.array([0.0, 0.5]), "identity", 2, "c", "f")


def test_preprocess_case_pipeline(tmp_path):
    rng = np.random.default_rng(3)
    paths = make_brats(tmp_path / "ds", "c1", rng, affine=LPS)
    spec = discover_cases(tmp_path / "ds", ["t2", "t1ce"])[0]
    cfg = PrepareConfig(modalities=["t2", "t1ce"], crop_margin=2, num_classes=3,
                        default_normalization=NormalizationConfig(scheme="minmax"),
                        normalization={"t1ce": NormalizationConfig(scheme="zscore_nonzero")})
    pc = preprocess_case(spec, cfg)
    props = pc.properties
    assert pc.image.dtype == np.float32 and pc.label.dtype == np.uint8
    assert pc.image.shape == (2, *pc.label.shape) == (2, *props["shape_after_crop"])
    json.dumps(props)  # serialisable
    for key in ("case", "modalities", "source_files", "label_file", "original_shape",
                "original_affine", "original_ornt", "canonical_shape", "original_spacing",
                "spacing_after_resampling", "shape_after_resampling", "crop_bbox",
                "cache_affine"):
        assert key in props
    assert props["modalities"] == ["t2", "t1ce"] and props["label_file"] == str(paths["seg"])
    assert props["original_axcodes"] == ["L", "P", "S"] and props["resampled"] is False
    # canonical t2 cropped = channel 0 (minmax to [0, 1]); t1ce channel 1 is z-scored
    t2 = np.asarray(nib.as_closest_canonical(nib.load(paths["t2"])).dataobj)
    bbox = props["crop_bbox"]
    crop = t2[tuple(slice(lo, hi) for lo, hi in bbox)]
    assert np.array_equal(pc.image[0] > 0, crop > crop[crop > 0].min())
    assert pc.image[0].max() == pytest.approx(1.0)
    assert pc.image[1][pc.image[1] != 0].mean() == pytest.approx(0.0, abs=1e-4)
    # crop = non-zero bounding box plus the margin (head spans the middle of the volume)
    nz = np.argwhere(t2 != 0)
    assert bbox == [[max(0, int(nz[:, a].min()) - 2), min(t2.shape[a], int(nz[:, a].max()) + 3)]
                    for a in range(3)]


@pytest.mark.parametrize("affine", [RAS, PERMUTED], ids=["ras", "permuted"])
def test_load_original_label_keeps_file_orientation(tmp_path, affine):
    rng = np.random.default_rng(4)
    paths = make_brats(tmp_path / "ds", "c1", rng, affine=affine)
    cfg = PrepareConfig(label_mapping="whole_tumour")
    label, spacing = load_original_label(paths["seg"], cfg, "c1")
    raw = np.asarray(nib.load(paths["seg"]).dataobj)
    assert label.dtype == np.uint8 and np.array_equal(label, (raw > 0).astype(np.uint8))
    assert np.allclose(spacing, np.sqrt((affine[:3, :3] ** 2).sum(0)))
