"""Bad input gives a clear InputError naming the case (and file)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from _nifti import LPS, RAS, head_image, make_brats, write_nifti

from duetseg.config import PrepareConfig
from duetseg.data.discovery import discover_cases
from duetseg.data.preprocess import preprocess_case
from duetseg.errors import InputError

CFG = PrepareConfig(modalities=["t1ce", "t2"], num_classes=3)


@pytest.fixture
def case(tmp_path):
    paths = make_brats(tmp_path / "ds", "bad_case", np.random.default_rng(5))
    return tmp_path / "ds", paths


def _run(root):
    return preprocess_case(discover_cases(root, ["t1ce", "t2"])[0], CFG)


def test_good_case_passes(case):
    assert _run(case[0]).image.shape[0] == 2


def test_missing_modality_file(case):
    root, paths = case
    make_brats(root, "other", np.random.default_rng(0))
    paths["t2"].unlink()
    with pytest.raises(InputError, match="bad_case.*bad_case_t2.nii.gz.*missing modality"):
        discover_cases(root, ["t1ce", "t2"])


def test_shape_mismatch(case):
    root, paths = case
    write_nifti(paths["t2"], head_image(np.random.default_rng(0), (20, 24, 18)))
    with pytest.raises(InputError, match=r"bad_case.*same voxel grid(.|\n)*\(20, 24, 18\)"):
        _run(root)


def test_affine_mismatch(case):
    root, paths = case
    shifted = RAS.copy()
    shifted[0, 3] += 3.0
    write_nifti(paths["t2"], head_image(np.random.default_rng(0)), shifted)
    with pytest.raises(InputError, match=r"bad_case(.|\n)*bad_case_t1ce(.|\n)*bad_case_t2"):
        _run(root)


def test_label_on_other_grid(case):
    root, paths = case
    write_nifti(paths["seg"], np.zeros((20, 24, 16), np.uint8), LPS)
    with pytest.raises(InputError, match="bad_case.*same voxel grid"):
        _run(root)


def test_real_4d_image(case):
    root, paths = case
    data = np.stack([head_image(np.random.default_rng(i)) for i in range(2)], axis=-1)
    write_nifti(paths["t1ce"], data)
    with pytest.raises(InputError, match=r"bad_case.*t1ce.*3D volume.*\(20, 24, 16, 2\)"):
        _run(root)


def test_all_zero_image(case):
    root, paths = case
    write_nifti(paths["t2"], np.zeros((20, 24, 16), np.float32))
    with pytest.raises(InputError, match="bad_case.*t2.*all zero"):
        _run(root)


def test_nan_image(case):
    root, paths = case
    data = head_image(np.random.default_rng(0))
    data[3, 4, 5] = np.nan
    write_nifti(paths["t1ce"], data)
    with pytest.raises(InputError, match="bad_case.*t1ce.*1 NaN/inf"):
        _run(root)


def test_unknown_label_values(case):
    root, paths = case
    lab = np.zeros((20, 24, 16), np.uint8)
    lab[5:8, 5:8, 5:8] = 7
    write_nifti(paths["seg"], lab)
    with pytest.raises(InputError, match=r"bad_case.*bad_case_seg.nii.gz.*unknown label.*\[7\]"):
        _run(root)


def test_truncated_gzip(case):
    root, paths = case
    raw = paths["t2"].read_bytes()
    assert gzip.decompress(raw)  # valid before
    paths["t2"].write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="bad_case.*bad_case_t2.nii.gz.*cannot read"):
        _run(root)


def test_input_error_keeps_case_and_file_across_processes():
    import pickle

    from duetseg.errors import InputError

    err = pickle.loads(pickle.dumps(InputError("NaN voxels", case="c7", file="/x/c7_t2.nii.gz")))
    assert (err.case, err.file) == ("c7", "/x/c7_t2.nii.gz")
    assert str(err) == "case 'c7', file '/x/c7_t2.nii.gz': NaN voxels"
