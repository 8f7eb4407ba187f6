"""``duetseg predict``: layouts, original geometry, probabilities, disagreement, post-processing."""

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
from _nifti import LPS, RAS, head_image, write_nifti
from _tiny_run import train_tiny
from scipy import ndimage

from duetseg.cli import main
from duetseg.errors import ConfigError, InputError
from duetseg.inference.postprocess import keep_largest_component
from duetseg.workflows.disagreement import disagreement_map, normalised_entropy
from duetseg.workflows.evaluate import evaluate_run
from duetseg.workflows.predict import CSV_COLUMNS, predict_folder

ODD = (37, 45, 29)  # larger than the 16^3 training crops, no axis a multiple of 16


_train = train_tiny


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_cache):
    """A dual-branch run (ours) and a single-network run, both tiny and barely trained."""
    root = tmp_path_factory.mktemp("predict")
    cache = synthetic_cache(root)
    return {
        "ours": _train(cache, root / "ours"),
        "single": _train(cache, root / "single", **{"method.name": "supervised",
                                                    "method.options": {"network": "vnet"}}),
    }


def _lps_copy(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same physical image stored with x and y reversed (an LPS-oriented file)."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [data.shape[0] - 1, data.shape[1] - 1]
    return np.ascontiguousarray(data[::-1, ::-1]), RAS @ flip


@pytest.fixture(scope="module")
def new_cases(tmp_path_factory):
    """Unlabelled cases of odd size: BraTS folder, CSV manifest and nnU-Net layouts."""
    root = tmp_path_factory.mktemp("new")
    rng = np.random.default_rng(7)
    images = {m: head_image(rng, ODD) for m in ("t1ce", "t2")}
    rows = []
    for case, orient in (("odd_ras", "ras"), ("odd_lps", "lps"), ("odd_lps2", "lps2")):
        row = {"case": case}
        for mod, data in images.items():
            if orient == "ras":
                arr, aff = data, RAS
            elif orient == "lps":
                arr, aff = _lps_copy(data)
            else:  # an unrelated LPS affine with its own spacing
                arr, aff = data, LPS
            path = write_nifti(root / "brats" / case / f"{case}_{mod}.nii.gz", arr, aff)
            row[mod] = str(path.relative_to(root))
            ch = {"t1ce": 0, "t2": 1}[mod]
            write_nifti(root / "nnunet" / "imagesTs" / f"{case}_{ch:04d}.nii.gz", arr, aff)
        rows.append(row)
    with open(root / "cases.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["case", "t1ce", "t2"])
        writer.writeheader()
        writer.writerows(rows)
    (root / "nnunet" / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "t1ce", "1": "t2"}}))
    return root


def _load(path):
    img = nib.load(str(path))
    return np.asanyarray(img.dataobj), img


def _manifest(new_cases, cases, path):
    """A CSV manifest of some of the new cases (absolute paths)."""
    lines = ["case,t1ce,t2"] + [
        f"{c}," + ",".join(str(new_cases / "brats" / c / f"{c}_{m}.nii.gz") for m in ("t1ce", "t2"))
        for c in cases]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(out):
    with open(out / "disagreement.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        return {r["case"]: r for r in reader}


@pytest.fixture(scope="module")
def full_prediction(runs, new_cases, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred") / "out"
    predict_folder(runs["ours"], new_cases / "brats", out, progress=False,
                   save_probabilities=True, save_disagreement=True)
    return out


def test_masks_keep_the_input_geometry_for_odd_sizes_and_lps(full_prediction, new_cases):
    out = full_prediction
    for case in ("odd_ras", "odd_lps", "odd_lps2"):
        src = nib.load(str(new_cases / "brats" / case / f"{case}_t1ce.nii.gz"))
        mask, img = _load(out / f"{case}.nii.gz")
        assert mask.shape == ODD and mask.dtype == np.uint8
        np.testing.assert_allclose(img.affine, src.affine, atol=1e-5)
        assert nib.aff2axcodes(img.affine) == nib.aff2axcodes(src.affine)
    # the LPS file holds the same physical image: the same mask, stored reversed
    ras, _ = _load(out / "odd_ras.nii.gz")
    lps, _ = _load(out / "odd_lps.nii.gz")
    assert np.array_equal(lps[::-1, ::-1], ras)
    assert nib.aff2axcodes(nib.load(str(out / "odd_lps.nii.gz")).affine) == ("L", "P", "S")


def test_probabilities_sum_to_one_and_argmax_is_the_mask(full_prediction):
    for case in ("odd_ras", "odd_lps"):
        prob, img = _load(full_prediction / f"{case}_prob.nii.gz")
        mask, mask_img = _load(full_prediction / f"{case}.nii.gz")
        assert prob.dtype == np.float32 and prob.shape == (*ODD, 2)
        np.testing.assert_allclose(img.affine, mask_img.affine, atol=1e-6)
        np.testing.assert_allclose(prob.sum(-1), 1.0, atol=1e-5)
        assert np.array_equal(prob.argmax(-1), mask)


def test_disagreement_map_and_csv(full_prediction):
    rows = _rows(full_prediction)
    assert set(rows) == {"odd_ras", "odd_lps", "odd_lps2"}
    for case, row in rows.items():
        dis, _ = _load(full_prediction / f"{case}_disagreement.nii.gz")
        mask, img = _load(full_prediction / f"{case}.nii.gz")
        assert dis.dtype == np.float32 and dis.shape == ODD
        assert dis.min() >= 0.0 and dis.max() <= 1.0
        fg = int((mask > 0).sum())
        assert int(row["foreground_voxels"]) == fg
        voxel_ml = abs(np.linalg.det(img.affine[:3, :3])) / 1000
        assert float(row["volume_ml"]) == pytest.approx(fg * voxel_ml, abs=1e-3)
        for key in ("disagreement", "entropy"):
            value = float(row[key])
            assert math.isnan(value) and fg == 0 or 0.0 <= value <= 1.0


def test_csv_and_nnunet_inputs_give_the_same_masks(runs, new_cases, full_prediction, tmp_path):
    for name, source in (("csv", new_cases / "cases.csv"), ("nnunet", new_cases / "nnunet")):
        out = tmp_path / name
        written = predict_folder(runs["ours"], source, out, progress=False)
        assert sorted(p.name for p in written) == [
            "odd_lps.nii.gz", "odd_lps2.nii.gz", "odd_ras.nii.gz"]
        for path in written:
            assert np.array_equal(_load(path)[0], _load(full_prediction / path.name)[0])
        assert _rows(out) == {c: {k: r[k] for k in CSV_COLUMNS}
                              for c, r in _rows(full_prediction).items()}


def test_single_network_disagreement_is_the_entropy(runs, new_cases, tmp_path):
    out = tmp_path / "single"
    predict_folder(runs["single"], new_cases / "cases.csv", out, progress=False,
                   save_disagreement=True)
    for row in _rows(out).values():
        assert row["disagreement"] == row["entropy"]


def test_tta_through_the_cli(runs, new_cases, full_prediction, tmp_path):
    out = tmp_path / "cli"
    manifest = _manifest(new_cases, ["odd_lps"], tmp_path / "one.csv")
    main(["predict", "--run", str(runs["ours"]), "--input", str(manifest), "--out", str(out),
          "--tta", "--save-probabilities", "--skip-existing", "--quiet"])
    mask, img = _load(out / "odd_lps.nii.gz")
    assert mask.shape == ODD and nib.aff2axcodes(img.affine) == ("L", "P", "S")
    prob, _ = _load(out / "odd_lps_prob.nii.gz")
    np.testing.assert_allclose(prob.sum(-1), 1.0, atol=1e-5)
    assert np.array_equal(prob.argmax(-1), mask)
    plain, _ = _load(full_prediction / "odd_lps_prob.nii.gz")
    assert not np.allclose(prob, plain)  # the flips changed the average


def _components(mask):
    return ndimage.label(mask > 0, structure=np.ones((3, 3, 3)))[1]


def test_largest_component_in_predict_and_evaluate(runs, tmp_path):
    rng = np.random.default_rng(3)
    for mod in ("t1ce", "t2"):  # two heads far apart: at least two predicted objects
        img = np.zeros(ODD, np.float32)
        img[:14], img[23:] = head_image(rng, (14, *ODD[1:])), head_image(rng, (14, *ODD[1:]))
        write_nifti(tmp_path / "in" / "two_heads" / f"two_heads_{mod}.nii.gz", img, RAS)
    for name, run in runs.items():
        plain_dir, kept_dir = tmp_path / f"{name}_plain", tmp_path / f"{name}_kept"
        predict_folder(run, tmp_path / "in", plain_dir, progress=False)
        predict_folder(run, tmp_path / "in", kept_dir, progress=False, largest_component=True)
        plain, _ = _load(plain_dir / "two_heads.nii.gz")
        kept, _ = _load(kept_dir / "two_heads.nii.gz")
        assert _components(plain) >= 2, name
        assert _components(kept) == 1 and np.array_equal(kept, keep_largest_component(plain))
        assert int(_rows(kept_dir)["two_heads"]["foreground_voxels"]) == int((kept > 0).sum())
    run = runs["ours"]
    case = json.loads((run / "splits.json").read_text())["test"][0]
    masks = {}
    for lc in (False, True):
        summary = evaluate_run(run, "test", progress=False, largest_component=lc)
        assert summary["largest_component"] is lc
        masks[lc], _ = _load(run / "eval" / "test" / "predictions" / f"{case}.nii.gz")
    assert _components(masks[True]) <= 1
    assert np.array_equal(masks[True], keep_largest_component(masks[False]))
    main(["evaluate", str(run), "--device", "cpu", "--largest-component"])
    cli_summary = json.loads((run / "eval" / "test" / "summary.json").read_text())
    assert cli_summary["largest_component"] is True


def test_skip_existing_completes_an_interrupted_run(runs, new_cases, tmp_path):
    out = tmp_path / "resume"
    source = _manifest(new_cases, ["odd_lps", "odd_ras"], tmp_path / "two.csv")
    predict_folder(runs["ours"], source, out, progress=False)
    before = _rows(out)
    kept = (out / "odd_lps.nii.gz").stat().st_mtime_ns
    (out / "odd_ras.nii.gz").unlink()  # as if killed before this case's mask was written
    (out / ".tmp-odd_ras.nii.gz-x.nii.gz").write_bytes(b"partial")
    predict_folder(runs["ours"], source, out, progress=False, skip_existing=True)
    assert (out / "odd_ras.nii.gz").is_file()
    assert (out / "odd_lps.nii.gz").stat().st_mtime_ns == kept
    assert not list(out.glob(".tmp-*"))
    assert _rows(out) == before


def test_output_folder_equal_to_input_is_refused(runs, new_cases):
    with pytest.raises(ConfigError, match="differ"):
        predict_folder(runs["ours"], new_cases / "brats", new_cases / "brats", progress=False)
    with pytest.raises(ConfigError, match="differ"):
        predict_folder(runs["ours"], new_cases / "cases.csv", new_cases, progress=False)


def test_missing_modality_names_case_and_file(runs, new_cases, tmp_path):
    for case, mods in (("odd_ras", ("t1ce",)), ("odd_lps", ("t1ce", "t2"))):
        (tmp_path / "in" / case).mkdir(parents=True)
        for mod in mods:
            name = f"{case}_{mod}.nii.gz"
            (tmp_path / "in" / case / name).write_bytes(
                (new_cases / "brats" / case / name).read_bytes())
    with pytest.raises(InputError) as exc:
        predict_folder(runs["ours"], tmp_path / "in", tmp_path / "out", progress=False)
    assert exc.value.case == "odd_ras" and "t2" in exc.value.file


def test_disagreement_map_definitions():
    rng = np.random.default_rng(0)

    def probs(shape=(3, 4, 5, 6)):
        p = rng.random(shape).astype(np.float32)
        return p / p.sum(0)

    three = {"branch_a": probs(), "branch_b": probs(), "branch_c": probs()}
    three["ensemble"] = sum(three.values()) / 3
    fg = [1 - three[k][0] for k in ("branch_a", "branch_b", "branch_c")]
    pairwise = np.max([np.abs(a - b) for a in fg for b in fg], axis=0)
    branches = ["branch_a", "branch_b", "branch_c"]
    np.testing.assert_allclose(disagreement_map(three, "ensemble", branches), pairwise,
                               atol=1e-6)
    # a branch absent from the outputs (a missing modality) is ignored; one left = entropy
    two = {k: v for k, v in three.items() if k != "branch_b"}
    fg_ac = [fg[0], fg[2]]
    np.testing.assert_allclose(disagreement_map(two, "ensemble", branches),
                               np.abs(fg_ac[0] - fg_ac[1]), atol=1e-6)
    one = {"branch_a": three["branch_a"], "ensemble": three["branch_a"]}
    np.testing.assert_allclose(disagreement_map(one, "ensemble", branches),
                               normalised_entropy(three["branch_a"]), atol=1e-6)
    uniform = {"prediction": np.full((4, 2, 2, 2), 0.25, np.float32)}
    np.testing.assert_allclose(disagreement_map(uniform, "prediction"), 1.0, atol=1e-6)
    certain = {"prediction": np.eye(3, dtype=np.float32)[:, :, None, None].repeat(2, 2)}
    np.testing.assert_allclose(disagreement_map(certain, "prediction"), 0.0, atol=1e-6)


@pytest.mark.parametrize("independent", [True, False])
def test_largest_component_removes_a_small_island(independent):
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[2:8, 2:8, 2:8] = 1       # class 1: big block
    mask[15:17, 15:17, 15:17] = 1  # class 1: island
    out = keep_largest_component(mask, independent=independent)
    expect = mask.copy()
    expect[15:17, 15:17, 15:17] = 0
    assert np.array_equal(out, expect) and out.dtype == mask.dtype
    # diagonal contact joins under 26-connectivity only
    mask[8, 8, 8] = 1
    assert keep_largest_component(mask, connectivity=3)[8, 8, 8] == 1
    assert keep_largest_component(mask, connectivity=1)[8, 8, 8] == 0


def test_largest_component_per_class_with_two_foreground_classes():
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[2:10, 2:10, 2:10] = 1     # class 1 big
    mask[4:6, 4:6, 4:6] = 2        # class 2 inside class 1 (largest of class 2)
    mask[15:18, 2:5, 2:5] = 2      # class 2: bigger separate blob (27 voxels > 8)
    mask[15, 15, 15] = 1           # class 1 island
    out = keep_largest_component(mask)
    assert out[15, 15, 15] == 0
    assert (out[15:18, 2:5, 2:5] == 2).all()
    assert (out[4:6, 4:6, 4:6] == 0).all()  # class 2's smaller component goes to background
    assert (out[2:4, 2:4, 2:4] == 1).all()
    # classes restricts the filter; the union mode keeps class 2 inside class 1's object
    assert (keep_largest_component(mask, classes=[1])[4:6, 4:6, 4:6] == 2).all()
    union = keep_largest_component(mask, independent=False)
    assert (union[4:6, 4:6, 4:6] == 2).all() and (union[15:18, 2:5, 2:5] == 0).all()
