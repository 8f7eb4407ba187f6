"""Tests of the synthetic two-modality lesion dataset."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from duetseg.data.synthetic import make_synthetic_case, make_synthetic_dataset

SHAPE = (40, 40, 32)


@pytest.fixture(scope="module")
def cases():
    return [make_synthetic_case(np.random.default_rng(i), SHAPE, (1.0, 1.0, 1.5))
            for i in range(4)]


def test_shapes_and_dtypes(cases):
    for c in cases:
        assert set(c.images) == {"t1ce", "t2"}
        for img in c.images.values():
            assert img.shape == SHAPE and img.dtype == np.float32
        assert c.label.shape == SHAPE and c.label.dtype == np.uint8
        assert set(np.unique(c.label)) == {0, 1}
        assert np.allclose(np.diag(c.affine)[:3], (1.0, 1.0, 1.5))


def test_deterministic_for_a_seed():
    a = make_synthetic_case(np.random.default_rng(7), SHAPE)
    b = make_synthetic_case(np.random.default_rng(7), SHAPE)
    c = make_synthetic_case(np.random.default_rng(8), SHAPE)
    for m in a.images:
        np.testing.assert_array_equal(a.images[m], b.images[m])
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.images["t2"], c.images["t2"])


def test_label_inside_head_and_background_zero(cases):
    for c in cases:
        assert c.label.sum() > 50
        assert not (c.label.astype(bool) & ~c.brain).any()
        for img in c.images.values():
            assert (img[~c.head] == 0).all()
            assert (img[c.head] > 0).mean() > 0.99
        # The head does not fill the volume, so cropping to non-zero has work to do.
        assert 0.1 < c.head.mean() < 0.7


def test_lookalikes_bright_in_b_plain_in_a_and_unlabelled(cases):
    for c in cases:
        a, b = c.images["t1ce"], c.images["t2"]
        lesion = c.label.astype(bool)
        assert c.lookalikes.any()
        assert not c.label[c.lookalikes].any()
        tissue = c.brain & ~lesion & ~c.lookalikes
        assert b[c.lookalikes].mean() > 1.3 * b[tissue].mean()
        assert 0.7 < b[c.lookalikes].mean() / b[lesion].mean() < 1.3
        assert a[c.lookalikes].mean() < 1.4 * a[tissue].mean()
        assert a[c.lookalikes].mean() < 0.85 * a[c.enhancing].mean()


def test_core_bright_in_a_full_extent_in_b(cases):
    for c in cases:
        a, b = c.images["t1ce"], c.images["t2"]
        lesion = c.label.astype(bool)
        tissue = c.brain & ~lesion & ~c.lookalikes
        outer = lesion & ~c.core
        assert c.enhancing.any() and outer.any()
        assert a[c.enhancing].mean() > 1.3 * a[tissue].mean()
        assert a[c.enhancing].mean() > 1.3 * a[outer].mean()
        assert b[outer].mean() > 1.3 * b[tissue].mean()


def test_intensity_scale_differs_between_cases(cases):
    means = [c.images["t1ce"][c.head].mean() for c in cases]
    assert max(means) / min(means) > 1.5


def test_dataset_layout_and_determinism(tmp_path):
    out = make_synthetic_dataset(tmp_path / "a", n_cases=2, shape=(24, 24, 16), seed=3)
    again = make_synthetic_dataset(tmp_path / "b", n_cases=2, shape=(24, 24, 16), seed=3)
    assert sorted(p.name for p in out.iterdir()) == ["synth_000", "synth_001"]
    for case in ("synth_000", "synth_001"):
        names = sorted(p.name for p in (out / case).iterdir())
        assert names == [f"{case}_seg.nii.gz", f"{case}_t1ce.nii.gz", f"{case}_t2.nii.gz"]
        img = nib.load(out / case / f"{case}_t2.nii.gz")
        assert img.shape == (24, 24, 16)
        assert np.allclose(img.header.get_zooms(), (1.0, 1.0, 1.5))
        seg = np.asarray(nib.load(out / case / f"{case}_seg.nii.gz").dataobj)
        assert seg.dtype == np.uint8 and seg.any()
        np.testing.assert_array_equal(
            img.get_fdata(), nib.load(again / case / f"{case}_t2.nii.gz").get_fdata())
    assert not list(out.rglob(".tmp-*"))
    a0 = nib.load(out / "synth_000" / "synth_000_t2.nii.gz").get_fdata()
    a1 = nib.load(out / "synth_001" / "synth_001_t2.nii.gz").get_fdata()
    assert not np.array_equal(a0, a1)
