"""evaluate_folder on tiny NIfTI files: outputs, matching rules and mismatch errors, IoU,
normalised surface Dice, nnU-Net v2 summary.json fields and the command-line options."""

from __future__ import annotations

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch
from _cli import cli_error_line
from medpy.metric import binary as mb
from monai.metrics import compute_surface_dice

from duetseg.cli import main
from duetseg.errors import InputError
from duetseg.evaluation.folder import evaluate_folder
from duetseg.evaluation.nnunet_summary import NNUNET_METRICS
from duetseg.evaluation.overlap import surface_dice

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
                                     "rvd", "iou", "nsd"]
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
    assert on_disk["prediction"] == json.loads(json.dumps(summary["prediction"]))
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


def test_nnunet_fields_match_the_voxel_counts(folders):
    pred_dir, ref_dir, out_dir, (pred1, ref1) = folders
    evaluate_folder(pred_dir, ref_dir, out_dir)
    s = json.loads((out_dir / "summary.json").read_text())
    assert set(s) >= {"prediction", "nsd_tolerance_mm", "foreground_mean", "mean",
                      "metric_per_case"}
    cases = s["metric_per_case"]
    assert [c["reference_file"] for c in cases] == [
        str(ref_dir / f"{c}.nii.gz") for c in ("c1", "c2", "c3")]
    assert cases[1]["prediction_file"] == str(pred_dir / "c2.nii")
    c1 = cases[0]["metrics"]["1"]
    assert set(c1) == set(NNUNET_METRICS)
    tp, fp, fn = int((pred1 & ref1).sum()), int((pred1 & ~ref1).sum()), int((~pred1 & ref1).sum())
    assert (c1["TP"], c1["FP"], c1["FN"]) == (tp, fp, fn)
    assert c1["TN"] == pred1.size - tp - fp - fn
    assert (c1["n_pred"], c1["n_ref"]) == (int(pred1.sum()), int(ref1.sum()))
    assert c1["Dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert c1["IoU"] == pytest.approx(tp / (tp + fp + fn))
    assert cases[1]["metrics"]["1"]["Dice"] == 0.0  # empty prediction
    assert cases[2]["metrics"]["1"]["Dice"] is None  # both empty: undefined, as nnU-Net
    assert s["mean"]["1"]["Dice"] == pytest.approx(c1["Dice"] / 2)  # mean over defined cases
    assert s["foreground_mean"] == s["mean"]["1"]  # one class
    rows = s["prediction"]["1"]  # duetseg's own fields: percent
    assert rows["iou"]["mean"] == pytest.approx(100 * (c1["IoU"] + 0 + 1) / 3)
    assert 0 < rows["nsd"]["mean"] < 100 and rows["nsd"]["n"] == 3
    assert s["nsd_tolerance_mm"] == 2.0


def _monai_nsd(pred, ref, spacing, tol):
    def one_hot(m):
        return torch.from_numpy(np.stack([~m, m])[None])

    return 100 * float(compute_surface_dice(one_hot(pred), one_hot(ref), [tol],
                                            spacing=list(spacing)).item())


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI about its own internals
def test_surface_dice_uses_the_spacing_of_each_axis():
    ref = box((3, 3, 3), (9, 10, 7)).astype(bool)
    along_x, along_z = np.roll(ref, 1, 0), np.roll(ref, 1, 2)  # 0.9 mm and 2.0 mm shifts
    assert surface_dice(along_x, ref, SPACING, 1.0) == 100.0
    assert surface_dice(along_z, ref, SPACING, 1.0) < 100.0
    assert surface_dice(along_z, ref, SPACING, 2.0) == 100.0
    for tol in (0.5, 1.0, 3.0):
        assert surface_dice(along_z, ref, SPACING, tol) == pytest.approx(
            _monai_nsd(along_z, ref, SPACING, tol))
    empty = np.zeros_like(ref)
    assert surface_dice(empty, empty, SPACING) == 100.0
    assert surface_dice(empty, ref, SPACING) == surface_dice(ref, empty, SPACING) == 0.0
    with pytest.raises(ValueError, match="positive"):
        surface_dice(ref, ref, SPACING, 0.0)


def test_cli_classes_label_mapping_and_tolerance(tmp_path, capsys):
    ref = box((1, 1, 1), (6, 6, 6), 4) + box((7, 7, 5), (10, 12, 9), 2)
    pred = box((1, 1, 1), (6, 6, 5), 2) + box((7, 7, 5), (10, 12, 9), 1)
    write(tmp_path / "r" / "x.nii.gz", ref)
    write(tmp_path / "p" / "x.nii.gz", pred)
    main(["evaluate-folder", "--pred", str(tmp_path / "p"), "--ref", str(tmp_path / "r"),
          "--out", str(tmp_path / "o"), "--classes", "1", "2", "--label-mapping", "2:1,4:2",
          "--nsd-tolerance", "1.5"])
    table = capsys.readouterr().out
    assert "IoU %" in table and "NSD %" in table
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert list(s["mean"]) == ["1", "2"] and s["nsd_tolerance_mm"] == 1.5
    assert s["mean"]["1"]["Dice"] == 1.0  # reference 2 -> class 1, predicted exactly
    assert 0.0 < s["mean"]["2"]["Dice"] < 1.0
    assert s["prediction"]["1"]["nsd"]["mean"] == 100.0
    line = cli_error_line(["evaluate-folder", "--pred", str(tmp_path / "p"), "--ref",
                           str(tmp_path / "r"), "--out", str(tmp_path / "o2"),
                           "--label-mapping", "2:1"], capsys)
    assert "x" in line and "[4]" in line and "label_mapping" in line
    line = cli_error_line(["evaluate-folder", "--pred", str(tmp_path / "p"), "--ref",
                           str(tmp_path / "r"), "--out", str(tmp_path / "o3"),
                           "--nsd-tolerance", "0"], capsys)
    assert "NSD tolerance must be positive" in line


def test_cli_label_mapping_by_brats_region(tmp_path, capsys):
    ref = box((1, 1, 1), (4, 4, 4), 1) + box((4, 1, 1), (6, 4, 4), 4) \
        + box((7, 7, 5), (10, 12, 9), 2)
    write(tmp_path / "r" / "x.nii.gz", ref)
    write(tmp_path / "p" / "x.nii.gz", ((ref == 1) | (ref == 4)).astype(np.uint8))
    dice = {}
    for region in ("tumour_core", "whole_tumour"):
        main(["evaluate-folder", "--pred", str(tmp_path / "p"), "--ref", str(tmp_path / "r"),
              "--out", str(tmp_path / region), "--label-mapping", region])
        s = json.loads((tmp_path / region / "summary.json").read_text())
        dice[region] = s["mean"]["1"]["Dice"]
    assert dice["tumour_core"] == 1.0  # labels 1 and 4 predicted exactly
    assert 0.0 < dice["whole_tumour"] < 1.0  # the oedema (2) is missed
    with pytest.raises(SystemExit) as exc:  # a usage error: exit 2, as for any bad option
        main(["evaluate-folder", "--pred", str(tmp_path / "p"), "--ref", str(tmp_path / "r"),
              "--out", str(tmp_path / "o"), "--label-mapping", "auto"])
    assert exc.value.code == 2 and "tumour_core" in capsys.readouterr().err
