"""Cache geometry and its exact inverse (crop, resampling, reorientation)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from _nifti import LPS, PERMUTED, RAS, block_label, make_brats, write_nifti

from duetseg.config import PrepareConfig
from duetseg.data.discovery import discover_cases
from duetseg.data.geometry import (
    load_volume,
    resample,
    restore_to_original,
    spacing_of,
    write_like_original,
)
from duetseg.data.preprocess import preprocess_case


def test_block_label_resample_round_trip():
    lab = block_label(np.random.default_rng(0))
    down = resample(lab, tuple(n // 2 for n in lab.shape), order=0)
    assert np.array_equal(down, lab[::2, ::2, ::2])
    assert np.array_equal(resample(down, lab.shape, order=0), lab)


def _prepare(tmp_path, affine, resample_2x: bool, margin: int = 1):
    rng = np.random.default_rng(7)
    paths = make_brats(tmp_path / "ds", "case_7", rng, affine=affine)
    spec = discover_cases(tmp_path / "ds", ["t1ce", "t2"])[0]
    target = None
    if resample_2x:
        canon = nib.as_closest_canonical(nib.load(paths["t1ce"]))
        target = tuple(2 * s for s in spacing_of(canon.affine))
    cfg = PrepareConfig(modalities=["t1ce", "t2"], target_spacing=target, crop_margin=margin,
                        num_classes=3)
    return paths, preprocess_case(spec, cfg)


@pytest.mark.parametrize("resample_2x", [False, True], ids=["native", "2mm"])
@pytest.mark.parametrize("affine", [RAS, LPS, PERMUTED], ids=["ras", "lps", "permuted"])
def test_label_round_trip_is_exact(tmp_path, affine, resample_2x):
    paths, pc = _prepare(tmp_path, affine, resample_2x)
    props = pc.properties
    assert props["resampled"] is resample_2x
    if resample_2x:
        assert props["shape_after_resampling"] == [n // 2 for n in props["canonical_shape"]]
    assert props["crop_bbox"] != [[0, n] for n in props["shape_after_resampling"]]  # cropped
    restored = restore_to_original(pc.label, props, is_label=True)
    out = tmp_path / "pred" / "case_7.nii.gz"
    write_like_original(restored, props, out)
    original, written = nib.load(paths["seg"]), nib.load(out)
    assert written.shape == original.shape
    assert np.allclose(written.affine, original.affine, atol=1e-6)
    assert written.get_data_dtype() == np.uint8
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 1
    assert np.array_equal(np.asarray(written.dataobj), np.asarray(original.dataobj))
    assert not list(out.parent.glob(".tmp-*"))


def test_cache_affine_points_at_the_same_world_position(tmp_path):
    paths, pc = _prepare(tmp_path, PERMUTED, resample_2x=True)
    props = pc.properties
    canon = np.asarray(props["canonical_affine"])
    lo = np.array([b[0] for b in props["crop_bbox"]])
    # cache voxel j <-> canonical index 2 (lo + j) + 0.5 (centre of a 2x2x2 block)
    j = np.array([1.0, 2.0, 3.0])
    expected = canon @ np.append(2 * (lo + j) + 0.5, 1.0)
    assert np.allclose(np.asarray(props["cache_affine"]) @ np.append(j, 1.0), expected)
    assert np.allclose(props["spacing_after_resampling"],
                       [2 * s for s in props["original_spacing"]])


@pytest.mark.parametrize("resample_2x", [False, True], ids=["native", "2mm"])
def test_probabilities_restore(tmp_path, resample_2x):
    paths, pc = _prepare(tmp_path, LPS, resample_2x, margin=0)
    onehot = np.stack([pc.label == k for k in range(3)]).astype(np.float32)
    probs = restore_to_original(onehot, pc.properties, is_label=False)
    original = np.asarray(nib.load(paths["seg"]).dataobj)
    assert probs.shape == (3, *original.shape)
    assert np.allclose(probs.sum(0), 1.0, atol=1e-5)
    image = np.asarray(nib.load(paths["t1ce"]).dataobj)
    outside = image == 0  # background of the head: cropped away or zero label -> class 0
    assert np.allclose(probs[0][outside], 1.0, atol=1e-5)
    if not resample_2x:
        assert np.array_equal(probs.argmax(0), original)
    write_like_original(probs, pc.properties, tmp_path / "p.nii.gz", dtype=np.float32)
    saved = nib.load(tmp_path / "p.nii.gz")
    assert saved.shape == (*original.shape, 3)


def test_restore_rejects_wrong_shape(tmp_path):
    _, pc = _prepare(tmp_path, RAS, resample_2x=False)
    with pytest.raises(ValueError, match="cached geometry"):
        restore_to_original(pc.label[1:], pc.properties, is_label=True)


def test_trailing_singleton_4d_is_squeezed(tmp_path):
    data = np.random.default_rng(0).random((6, 7, 5, 1)).astype(np.float32) + 1
    path = write_nifti(tmp_path / "x.nii.gz", data, LPS)
    img = load_volume(path, "c1")
    assert img.shape == (6, 7, 5)
    assert np.allclose(np.asarray(img.dataobj), data[::-1, ::-1, :, 0])
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
