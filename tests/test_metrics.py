"""Metrics agree with medpy 0.5.2, follow the empty-mask policy, and summaries are right."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from medpy.metric import binary as mb
from scipy.ndimage import gaussian_filter

from duetseg.evaluation.metrics import (
    asd,
    assd,
    case_metrics,
    dice,
    hd95,
    multiclass_metrics,
    volume_difference,
)
from duetseg.evaluation.summary import METRICS, format_table, summarize, write_summary

SHAPE = (30, 40, 25)
SPACING = (0.8, 1.3, 2.5)


def blob(seed: int, shape=SHAPE, sigma: float = 2.5, level: float = 0.3) -> np.ndarray:
    """Thresholded smoothed noise: a few irregular blobs, some reaching the borders."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field > level * field.std()


def medpy_reference(pred, ref, spacing):
    return {
        "dice": 100.0 * mb.dc(pred, ref),
        "asd": mb.asd(pred, ref, voxelspacing=spacing, connectivity=1),
        "assd": mb.assd(pred, ref, voxelspacing=spacing, connectivity=1),
        "hd95": mb.hd95(pred, ref, voxelspacing=spacing, connectivity=1),
        "rvd": 100.0 * mb.ravd(pred, ref),
    }


def assert_matches_medpy(pred, ref, spacing):
    ours = case_metrics(pred, ref, spacing)
    theirs = medpy_reference(pred, ref, spacing)
    for key in METRICS:
        assert ours[key] == pytest.approx(theirs[key], rel=1e-6, abs=1e-12), key
    return ours


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agrees_with_medpy_on_random_blobs(seed):
    pred, ref = blob(2 * seed), blob(2 * seed + 1)
    # the wrap-mode smoothing makes objects cross the volume faces: border erosion matters
    assert pred[0].any() or pred[-1].any() or pred[:, 0].any() or pred[:, :, -1].any()
    ours = assert_matches_medpy(pred, ref, SPACING)
    assert 0.0 < ours["dice"] < 100.0
    assert ours["hd95"] > 0.0


def test_agrees_with_medpy_for_small_object_and_overlapping_pair():
    ref = blob(7)
    # nearly the same mask: shifted by one voxel, so distances are small but non-zero
    pred = np.roll(ref, 1, axis=2)
    assert_matches_medpy(pred, ref, SPACING)
    # a small object far from the faces (the crop is a small interior box)
    small_pred = np.zeros(SHAPE, bool)
    small_ref = np.zeros(SHAPE, bool)
    small_pred[10:14, 12:18, 8:11] = True
    small_ref[11:16, 13:17, 9:13] = True
    assert_matches_medpy(small_pred, small_ref, (1.0, 1.0, 1.0))
    assert_matches_medpy(small_pred, small_ref, SPACING)


def test_object_filling_whole_volume_has_its_surface_on_the_faces():
    full = np.ones((6, 7, 5), bool)
    inner = np.zeros_like(full)
    inner[1:-1, 1:-1, 1:-1] = True
    ours = assert_matches_medpy(inner, full, (1.0, 2.0, 3.0))
    assert ours["asd"] > 0.0


def test_single_functions_and_label_inputs():
    pred, ref = blob(11), blob(12)
    theirs = medpy_reference(pred, ref, SPACING)
    assert dice(pred, ref) == pytest.approx(theirs["dice"], rel=1e-6)
    assert asd(pred, ref, SPACING) == pytest.approx(theirs["asd"], rel=1e-6)
    assert assd(pred, ref, SPACING) == pytest.approx(theirs["assd"], rel=1e-6)
    assert hd95(pred, ref, SPACING) == pytest.approx(theirs["hd95"], rel=1e-6)
    # ASD is directed: swapping the arguments changes it, ASSD does not
    assert asd(ref, pred, SPACING) != pytest.approx(asd(pred, ref, SPACING), rel=1e-9)
    assert assd(ref, pred, SPACING) == pytest.approx(assd(pred, ref, SPACING), rel=1e-12)
    # integer masks (0/1 uint8) give the same result as booleans
    assert case_metrics(pred.astype(np.uint8), ref.astype(np.uint8), SPACING) == case_metrics(
        pred, ref, SPACING
    )


def test_empty_mask_policy():
    empty = np.zeros(SHAPE, bool)
    obj = blob(5)
    both = case_metrics(empty, empty, SPACING)
    assert both == {"dice": 100.0, "asd": 0.0, "assd": 0.0, "hd95": 0.0, "rvd": 0.0}
    for pred, ref in ((empty, obj), (obj, empty)):
        one = case_metrics(pred, ref, SPACING)
        assert one["dice"] == 0.0
        assert all(math.isnan(one[k]) for k in ("asd", "assd", "hd95"))
    assert case_metrics(empty, obj, SPACING)["rvd"] == -100.0
    assert math.isnan(case_metrics(obj, empty, SPACING)["rvd"])
    assert math.isnan(hd95(empty, obj, SPACING))
    assert asd(empty, empty, SPACING) == 0.0


def test_shape_mismatch_and_bad_spacing():
    with pytest.raises(ValueError, match=r"\(30, 40, 25\).*\(30, 40, 24\)"):
        case_metrics(np.zeros(SHAPE), np.zeros((30, 40, 24)), SPACING)
    with pytest.raises(ValueError, match="shape"):
        multiclass_metrics(np.zeros(SHAPE), np.zeros((3, 3, 3)), SPACING, [1])
    with pytest.raises(ValueError, match="spacing"):
        case_metrics(blob(1), blob(2), (1.0, 1.0))


def test_multiclass_matches_per_class_binary():
    rng = np.random.default_rng(3)
    ref = blob(20).astype(np.int64) + blob(21).astype(np.int64)  # values 0, 1, 2
    pred = ref.copy()
    flip = rng.random(SHAPE) < 0.05
    pred[flip] = rng.integers(0, 3, flip.sum())
    out = multiclass_metrics(pred, ref, SPACING, [1, 2, 3])
    assert set(out) == {1, 2, 3}
    for c in (1, 2):
        assert out[c] == case_metrics(pred == c, ref == c, SPACING)
        assert out[c]["dice"] == pytest.approx(100.0 * mb.dc(pred == c, ref == c), rel=1e-6)
    assert out[3] == {"dice": 100.0, "asd": 0.0, "assd": 0.0, "hd95": 0.0, "rvd": 0.0}


def test_volume_difference_sign_says_too_small_or_too_large():
    ref = np.zeros((10, 10, 10), bool)
    ref[2:6, 2:7, 2:7] = True  # 100 voxels
    small, large = np.zeros_like(ref), np.zeros_like(ref)
    small[2:6, 2:7, 2:5] = True  # 60 voxels, all inside the reference
    large[2:8, 2:7, 2:7] = True  # 150 voxels
    assert volume_difference(small, ref) == pytest.approx(-40.0)
    assert volume_difference(large, ref) == pytest.approx(50.0)
    assert volume_difference(ref, ref) == 0.0


def test_summarize_statistics_and_nan_counts(tmp_path):
    nan = float("nan")
    rows = [
        {"case": "a", "output": "ensemble", "class": 1, "dice": 80.0, "asd": 1.0,
         "assd": 2.0, "hd95": 3.0, "rvd": -10.0},
        {"case": "b", "output": "ensemble", "class": 1, "dice": 90.0, "asd": 3.0,
         "assd": 4.0, "hd95": 5.0, "rvd": 30.0},
        {"case": "c", "output": "ensemble", "class": 1, "dice": 0.0, "asd": nan,
         "assd": nan, "hd95": nan, "rvd": -100.0},
        {"case": "a", "output": "branch_a", "class": 1, "dice": 0.0, "asd": nan,
         "assd": nan, "hd95": nan, "rvd": nan},
    ]
    s = summarize(rows)
    assert list(s) == ["ensemble", "branch_a"]
    assert list(s["ensemble"]) == ["1"]
    d = s["ensemble"]["1"]["dice"]
    assert d["mean"] == pytest.approx(170.0 / 3)
    assert d["std"] == pytest.approx(np.std([80.0, 90.0, 0.0]))
    assert d["median"] == 80.0
    assert (d["n"], d["nan_count"]) == (3, 0)
    a = s["ensemble"]["1"]["asd"]
    assert (a["mean"], a["std"], a["median"], a["n"], a["nan_count"]) == (2.0, 1.0, 2.0, 2, 1)
    only_nan = s["branch_a"]["1"]["hd95"]
    assert only_nan == {"mean": None, "std": None, "median": None, "n": 0, "nan_count": 1}

    path = tmp_path / "summary.json"
    write_summary(s, path)
    text = path.read_text()
    assert "NaN" not in text
    assert json.loads(text) == s

    table = format_table(s)
    lines = table.splitlines()
    assert "Dice %" in lines[0] and "HD95 mm" in lines[0] and "NaN count" in lines[0]
    assert "RVD %" in lines[0]
    ens = next(line for line in lines if line.startswith("ensemble"))
    assert "56.67 ± 40.28" in ens and "2.00 ± 1.00" in ens and "-26.67 ± " in ens
    assert ens.split()[-2:] == ["3", "1"]
    assert "n/a" in next(line for line in lines if line.startswith("branch_a"))


def test_rows_and_files_from_before_rvd_still_read(tmp_path):
    from duetseg.evaluation.summary import write_metrics_csv
    from duetseg.reporting.collect import read_metrics_csv

    old = tmp_path / "metrics.csv"
    old.write_text("case,output,class,dice,asd,assd,hd95\na,ensemble,1,80.0,1.0,2.0,3.0\n")
    rows = read_metrics_csv(old)
    assert rows[0]["dice"] == 80.0 and math.isnan(rows[0]["rvd"])
    stats = summarize([{k: v for k, v in rows[0].items() if k != "rvd"}])["ensemble"]["1"]
    assert stats["rvd"] == {"mean": None, "std": None, "median": None, "n": 0, "nan_count": 1}
    line = format_table({"ensemble": {"1": stats}}).splitlines()[2]
    assert line.split()[-2:] == ["1", "0"]  # one case, no undefined distance metric
    write_metrics_csv(rows, tmp_path / "new.csv")
    assert (tmp_path / "new.csv").read_text().splitlines()[1] == "a,ensemble,1,80.0,1.0,2.0,3.0,"
    old.write_text("case,output,class,dice,asd,assd\na,ensemble,1,80.0,1.0,2.0\n")
    with pytest.raises(Exception, match="hd95"):
        read_metrics_csv(old)
