"""evaluate_folder on tiny NIfTI files: outputs, matching rules and mismatch errors."""

from __future__ import annotations

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
from medpy.metric import binary as mb

from duetseg.errors import InputError
from duetseg.evaluation.folder import evaluate_folder

SHAPE = (12, 14, 10)
SPACING = (0.9, 1.2, 2.0)
AFFINE = np.diag([*SPACING, 1.0])


def write(path, data, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.uint8), affine), str(path))


def box(lo, hi, value=1, shape=SHAPE):
    arr = np.zeros(shape, np.uint8)
    arr[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = value
    return arr


@pytest.fixture
def folders(tmp_path):
    """Three cases: a good overlap, an empty prediction, and both empty."""
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    ref1, pred1 = box((2, 3, 2), (8, 10, 7)), box((3, 3, 2), (9, 11, 6))
    write(ref_dir / "c1.nii.gz", ref1)
    write(pred_dir / "c1.nii.gz", pred1)
    write(ref_dir / "c2.nii.gz", box((4, 4, 4), (7, 7, 7)))
    write(pred_dir / "c2.nii", np.zeros(SHAPE))  # plain .nii is matched too
    write(ref_dir / "c3.nii.gz", np.zeros(SHAPE))
    write(pred_dir / "c3.nii.gz", np.zeros(SHAPE))
    return pred_dir, ref_dir, tmp_path / "out", (pred1.astype(bool), ref1.astype(bool))


def test_writes_csv_and_summary(folders):
    pred_dir, ref_dir, out_dir, (pred1, ref1) = folders
    summary = evaluate_folder(pred_dir, ref_dir, out_dir)

    with open(out_dir / "metrics.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["case", "output", "class", "dice", "asd", "assd", "hd95",
                                     "rvd"]
        rows = list(reader)
    assert [(r["case"], r["output"], r["class"]) for r in rows] == [
        ("c1", "prediction", "1"), ("c2", "prediction", "1"), ("c3", "prediction", "1")]
    c1 = rows[0]
    assert float(c1["dice"]) == pytest.approx(100 * mb.dc(pred1, ref1), rel=1e-6)
    assert float(c1["asd"]) == pytest.approx(mb.asd(pred1, ref1, SPACING), rel=1e-6)
    assert float(c1["hd95"]) == pytest.approx(mb.hd95(pred1, ref1, SPACING), rel=1e-6)
    assert float(c1["rvd"]) == pytest.approx(100 * (192 - 210) / 210)  # prediction too small
    assert float(rows[1]["rvd"]) == -100.0 and float(rows[2]["rvd"]) == 0.0
    assert float(rows[1]["dice"]) == 0.0 and rows[1]["hd95"] == ""  # NaN written empty
    assert float(rows[2]["dice"]) == 100.0 and float(rows[2]["asd"]) == 0.0

    on_disk = json.loads((out_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    dice = on_disk["prediction"]["1"]["dice"]
    assert dice["n"] == 3 and dice["nan_count"] == 0
    assert dice["mean"] == pytest.approx((float(c1["dice"]) + 0.0 + 100.0) / 3)
    hd = on_disk["prediction"]["1"]["hd95"]
    assert hd["n"] == 2 and hd["nan_count"] == 1
    assert hd["mean"] == pytest.approx(float(c1["hd95"]) / 2)


def test_default_classes_from_both_sides_and_label_mapping(tmp_path):
    pred_dir, ref_dir = tmp_path / "p", tmp_path / "r"
    ref = box((1, 1, 1), (6, 6, 6), 4) + box((7, 7, 5), (10, 12, 9), 2)
    pred = box((1, 1, 1), (6, 6, 5), 1) + box((7, 7, 5), (10, 12, 9), 3)
    write(ref_dir / "x.nii.gz", ref)
    write(pred_dir / "x.nii.gz", pred)
    s = evaluate_folder(pred_dir, ref_dir, tmp_path / "o1")
    assert list(s["prediction"]) == ["1", "2", "3", "4"]
    assert s["prediction"]["4"]["dice"]["mean"] == 0.0

    mapped = evaluate_folder(pred_dir, ref_dir, tmp_path / "o2",
                             label_mapping={0: 0, 2: 3, 4: 1})
    assert list(mapped["prediction"]) == ["1", "3"]
    assert mapped["prediction"]["3"]["dice"]["mean"] == 100.0
    assert 0.0 < mapped["prediction"]["1"]["dice"]["mean"] < 100.0

    only = evaluate_folder(pred_dir, ref_dir, tmp_path / "o3", classes=[3])
    assert list(only["prediction"]) == ["3"]
    with pytest.raises(ValueError, match=r"\[4\].*label_mapping"):
        evaluate_folder(pred_dir, ref_dir, tmp_path / "o4", label_mapping={0: 0, 2: 1})


def test_shape_mismatch_names_case_and_files(folders):
    pred_dir, ref_dir, out_dir, _ = folders
    write(pred_dir / "c1.nii.gz", np.zeros((12, 14, 11)))
    with pytest.raises(ValueError, match=r"'c1'.*shape") as info:
        evaluate_folder(pred_dir, ref_dir, out_dir)
    msg = str(info.value)
    assert str(pred_dir / "c1.nii.gz") in msg and str(ref_dir / "c1.nii.gz") in msg
    assert isinstance(info.value, InputError)
    assert not (out_dir / "metrics.csv").exists()


def test_affine_mismatch_names_case_and_files(folders):
    pred_dir, ref_dir, out_dir, _ = folders
    shifted = AFFINE.copy()
    shifted[0, 3] = 5.0
    write(pred_dir / "c3.nii.gz", np.zeros(SHAPE), affine=shifted)
    with pytest.raises(ValueError, match=r"'c3'.*affine") as info:
        evaluate_folder(pred_dir, ref_dir, out_dir)
    assert str(ref_dir / "c3.nii.gz") in str(info.value)


def test_missing_prediction_lists_cases_and_extra_prediction_warns(folders):
    pred_dir, ref_dir, out_dir, _ = folders
    (pred_dir / "c2.nii").unlink()
    (pred_dir / "c3.nii.gz").unlink()
    with pytest.raises(ValueError, match="c2, c3"):
        evaluate_folder(pred_dir, ref_dir, out_dir)

    write(pred_dir / "c2.nii", np.zeros(SHAPE))
    write(pred_dir / "c3.nii.gz", np.zeros(SHAPE))
    write(pred_dir / "stray.nii.gz", np.zeros(SHAPE))
    with pytest.warns(UserWarning, match="stray"):
        s = evaluate_folder(pred_dir, ref_dir, out_dir)
    assert s["prediction"]["1"]["dice"]["n"] == 3
    assert not math.isnan(s["prediction"]["1"]["dice"]["mean"])
