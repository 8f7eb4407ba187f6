"""Bad input gives a clear error naming the case and file, and leaves nothing partial.

Each test is one entry of the catalogue in docs/bad_input.md.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from _cli import cli_error_line
from _nifti import LPS, RAS, head_image, make_brats, write_nifti

from duetseg.config import PrepareConfig
from duetseg.data.cache import Cache
from duetseg.data.discovery import discover_cases
from duetseg.data.prepare import prepare_dataset
from duetseg.data.preprocess import preprocess_case
from duetseg.errors import ConfigError, InputError

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


# ---------------------------------------------------------------- more volume faults


def test_2d_image(case):
    root, paths = case
    write_nifti(paths["t2"], head_image(np.random.default_rng(0), (20, 24)))
    with pytest.raises(InputError, match=r"bad_case.*bad_case_t2.nii.gz.*3D volume.*\(20, 24\)"):
        _run(root)


def test_inf_voxels(case):
    root, paths = case
    data = head_image(np.random.default_rng(0))
    data[1, 2, 3], data[4, 5, 6] = np.inf, -np.inf
    write_nifti(paths["t2"], data)
    with pytest.raises(InputError, match="bad_case.*bad_case_t2.nii.gz.*2 NaN/inf"):
        _run(root)


def test_not_a_nifti_file(case):
    root, paths = case
    paths["t1ce"].write_bytes(b"this is not an image")
    with pytest.raises(InputError, match="bad_case.*bad_case_t1ce.nii.gz.*cannot read"):
        _run(root)


def test_label_values_outside_a_dict_mapping(case):
    root, paths = case
    lab = np.zeros((20, 24, 16), np.uint8)
    lab[5:8, 5:8, 5:8] = 4
    lab[9:11, 9:11, 9:11] = 3
    write_nifti(paths["seg"], lab)
    cfg = PrepareConfig(modalities=["t1ce", "t2"], num_classes=3, label_mapping={0: 0, 1: 1, 4: 2})
    with pytest.raises(InputError, match=r"bad_case.*bad_case_seg.nii.gz.*unknown label "
                                         r"values \[3\].*knows \[0, 1, 4\]"):
        preprocess_case(discover_cases(root, ["t1ce", "t2"])[0], cfg)


# ---------------------------------------------------------------- duplicate and clashing cases


def test_brats_same_modality_twice(case):
    root, paths = case
    write_nifti(root / "bad_case" / "bad_case_t2.nii", head_image(np.random.default_rng(0)))
    with pytest.raises(InputError, match=r"bad_case.*several files for modality 't2'"):
        discover_cases(root, ["t1ce", "t2"])


def test_nnunet_same_channel_twice(tmp_path):
    rng = np.random.default_rng(0)
    for ch in (0, 1):
        write_nifti(tmp_path / "imagesTr" / f"p1_{ch:04d}.nii.gz", head_image(rng))
    write_nifti(tmp_path / "imagesTr" / "p1_0001.nii", head_image(rng))
    with pytest.raises(InputError, match=r"'p1'.*several files for channel 0001"):
        discover_cases(tmp_path, ["0000", "0001"])


def test_case_names_differing_only_in_case(tmp_path):
    rng = np.random.default_rng(0)
    make_brats(tmp_path, "Case1", rng)
    make_brats(tmp_path, "case1", rng)
    with pytest.raises(InputError, match=r"'Case1' and 'case1' differ only in upper/lower"):
        discover_cases(tmp_path, ["t1ce", "t2"])


def _manifest(root: Path, names: list[str]) -> Path:
    rng = np.random.default_rng(0)
    lines = ["case,t1ce,t2"]
    for i, _ in enumerate(names):
        for mod in ("t1ce", "t2"):
            write_nifti(root / "img" / f"{i}_{mod}.nii.gz", head_image(rng))
    lines += [f"{name},img/{i}_t1ce.nii.gz,img/{i}_t2.nii.gz" for i, name in enumerate(names)]
    (root / "cases.csv").write_text("\n".join(lines) + "\n")
    return root / "cases.csv"


@pytest.mark.parametrize("names, case, reason", [
    (["p1", "p1"], "p1", "duplicate case name in CSV"),
    (["p1", "P1"], "p1", "'P1' and 'p1' differ only in upper/lower case"),
    (["p1", "p1_seg"], "p1_seg", "clashes with the '_seg' files of case 'p1'"),
    (["dataset", "p1"], "dataset", "reserved"),
    (["../escape", "p1"], "../escape", "not a safe file name"),
    (["sub/p2", "p1"], "sub/p2", "not a safe file name"),
    ([".tmp-p1", "p1"], ".tmp-p1", "not a safe file name"),
])
def test_csv_case_names_that_would_clash_or_escape(tmp_path, names, case, reason):
    csv_path = _manifest(tmp_path / "ds", names)
    with pytest.raises(InputError, match=rf"case '{re.escape(case)}', file '.*cases.csv': "
                                         rf".*{re.escape(reason)}"):
        discover_cases(csv_path, ["t1ce", "t2"])
    with pytest.raises(InputError):
        prepare_dataset(csv_path, tmp_path / "ds" / "cache", CFG, num_workers=1, progress=False)
    assert not (tmp_path / "ds" / "escape.npy").exists()
    assert not any((tmp_path / "ds" / "cache").glob("*"))


# ---------------------------------------------------------------- output folders


def test_prepare_out_equal_to_input_is_refused(case, tmp_path):
    root, _ = case
    with pytest.raises(ConfigError, match="must differ from the input folder"):
        prepare_dataset(root, root, CFG, num_workers=1, progress=False)
    csv_path = _manifest(tmp_path / "m", ["p1"])
    with pytest.raises(ConfigError, match="must differ from the input folder"):
        prepare_dataset(csv_path, tmp_path / "m" / ".", CFG, num_workers=1, progress=False)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match="is an existing file"):
        prepare_dataset(root, tmp_path / "a_file", CFG, num_workers=1, progress=False)
    assert sorted(p.name for p in root.iterdir()) == ["bad_case"]  # nothing written


def test_cli_prepare_out_equal_to_input(case, capsys):
    root, _ = case
    line = cli_error_line(["prepare", str(root), "--out", str(root), "--workers", "1"], capsys)
    assert "must differ from the input folder" in line and str(root) in line


# ---------------------------------------------------------------- nothing partial left behind


def _faulty_dataset(root: Path) -> Path:
    """Cases c1 .. c4; c3's T2 has a NaN voxel."""
    rng = np.random.default_rng(3)
    for i in range(1, 5):
        make_brats(root, f"c{i}", rng)
    data = head_image(rng)
    data[2, 3, 4] = np.nan
    write_nifti(root / "c3" / "c3_t2.nii.gz", data)
    return root


def _assert_no_partial_cases(cache: Path) -> set[str]:
    """Every case in ``cache`` is complete; return their names."""
    assert list(cache.glob(".tmp-*")) == []
    done = {p.stem for p in cache.glob("*.json") if p.name != "dataset.json"}
    for case in done:
        props = json.loads((cache / f"{case}.json").read_text())
        assert "fingerprint" in props
        image = np.load(cache / f"{case}.npy")
        assert image.shape == (2, *props["shape_after_crop"])
        assert np.load(cache / f"{case}_seg.npy").shape == image.shape[1:]
    stems = {p.name.split(".")[0].removesuffix("_seg") for p in cache.glob("*.npy")}
    assert stems <= done, f"arrays without their json: {stems - done}"
    return done


@pytest.mark.parametrize("workers", [1, 2])
def test_failing_case_leaves_nothing_partial(tmp_path, workers):
    raw = _faulty_dataset(tmp_path / "raw")
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match=r"'c3'.*c3_t2.nii.gz.*1 NaN/inf"):
        prepare_dataset(raw, cache, CFG, num_workers=workers, progress=False)
    done = _assert_no_partial_cases(cache)
    assert "c3" not in done
    if workers == 1:  # cases run in sorted order: those before c3 are finished
        assert done == {"c1", "c2"}
    assert not (cache / "dataset.json").exists()
    with pytest.raises(ConfigError, match="not a prepared cache"):
        Cache(cache)


def test_case_that_turns_bad_loses_its_old_files(tmp_path):
    raw = tmp_path / "raw"
    rng = np.random.default_rng(4)
    for i in range(1, 4):
        make_brats(raw, f"c{i}", rng)
    cache = tmp_path / "cache"
    prepare_dataset(raw, cache, CFG, num_workers=1, progress=False)
    write_nifti(raw / "c2" / "c2_t1ce.nii.gz", np.zeros((20, 24, 16), np.float32))
    with pytest.raises(InputError, match="'c2'.*c2_t1ce.nii.gz.*all zero"):
        prepare_dataset(raw, cache, CFG, num_workers=1, progress=False)
    assert _assert_no_partial_cases(cache) == {"c1", "c3"}
    assert not any(cache.glob("c2*"))
    assert not (cache / "dataset.json").exists()  # it would list c2, which is gone


def test_replaced_input_file_is_prepared_again(tmp_path):
    raw = tmp_path / "raw"
    rng = np.random.default_rng(8)
    for i in range(1, 3):
        make_brats(raw, f"c{i}", rng)
    cache = prepare_dataset(raw, tmp_path / "cache", CFG, num_workers=1, progress=False)
    before = {c: np.array(cache.load_image(c)) for c in cache.cases}
    lab = np.zeros((20, 24, 16), np.uint8)
    lab[6:14, 6:18, 4:12] = 1
    write_nifti(raw / "c2" / "c2_seg.nii.gz", lab)
    write_nifti(raw / "c2" / "c2_t2.nii.gz", head_image(np.random.default_rng(99)))
    cache = prepare_dataset(raw, tmp_path / "cache", CFG, num_workers=1, progress=False)
    assert np.array_equal(cache.load_image("c1"), before["c1"])
    assert not np.array_equal(cache.load_image("c2")[1], before["c2"][1])
    assert cache.load_label("c2").sum() == lab.sum()


@pytest.mark.parametrize("fault, expected", [
    ("nan", "1 NaN/inf voxels"),
    ("2d", "expected a 3D volume"),
    ("truncated", "cannot read image"),
    ("label", "unknown label values [4]"),
])
def test_cli_names_case_and_file_in_one_line(tmp_path, capsys, fault, expected):
    rng = np.random.default_rng(6)
    make_brats(tmp_path / "raw", "good", rng)
    paths = make_brats(tmp_path / "raw", "broken", rng)
    target = paths["seg"] if fault == "label" else paths["t2"]
    if fault == "nan":
        data = head_image(rng)
        data[0, 0, 0] = np.nan
        write_nifti(target, data)
    elif fault == "2d":
        write_nifti(target, head_image(rng, (20, 24)))
    elif fault == "truncated":
        target.write_bytes(target.read_bytes()[:200])
    else:
        lab = np.zeros((20, 24, 16), np.uint8)
        lab[8:10, 8:10, 8:10] = 4
        write_nifti(target, lab)
    line = cli_error_line(["prepare", str(tmp_path / "raw"), "--out", str(tmp_path / "cache"),
                        "--workers", "1", "--label-mapping", "identity"], capsys)
    assert "'broken'" in line and target.name in line and expected in line
    _assert_no_partial_cases(tmp_path / "cache")


# ---------------------------------------------------------------- trained runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_cache, one_thread):
    """Two tiny runs on one cache of T1ce + T2: ``ours`` and ``supervised`` (2 iterations)."""
    from duetseg.config import load_config
    from duetseg.training import train

    root = tmp_path_factory.mktemp("runs")
    cache = synthetic_cache(root, seed=4, raw_modalities=("t1ce", "t2", "flair"))
    raw = root / "raw"
    base = {
        "cache": str(cache.root), "splits.labeled": 2, "splits.val": 1, "splits.test": 1,
        "model.base_width": 2, "train.crop_size": [16, 16, 16], "train.batch_size": 4,
        "train.labeled_bs": 2, "train.num_workers": 0, "train.max_iterations": 2,
        "train.val_every": 2, "train.checkpoint_every": 2, "train.device": "cpu",
        "inference.sw_batch_size": 4,
    }
    out = {"raw": raw, "cache": cache.root}
    for name in ("ours", "supervised"):
        cfg = load_config("demo", [f"{k}={json.dumps(v)}" for k, v in
                                   {**base, "method.name": name}.items()])
        train(cfg, root / name, progress=False)
        out[name] = root / name
    return out


def _clone(runs: dict, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the ``ours`` run and of its cache (the copy's config points at the copy)."""
    import shutil

    from duetseg.run.config import load_run_config

    run = Path(shutil.copytree(runs["ours"], tmp_path / "run"))
    cache = Path(shutil.copytree(runs["cache"], tmp_path / "cache"))
    cfg = load_run_config(run)
    cfg.cache = cache
    (run / "config.yaml").write_text(cfg.to_yaml())
    return run, cache


def test_cli_predict_out_equal_to_input(runs, capsys):
    raw = runs["raw"]
    line = cli_error_line(["predict", "--run", str(runs["ours"]), "--input", str(raw),
                        "--out", str(raw), "--device", "cpu"], capsys)
    assert "must differ from the input folder" in line
    assert not any(raw.glob("*.nii.gz")) and not (raw / "disagreement.csv").exists()


def test_predict_bad_case_names_it_and_leaves_nothing_partial(runs, tmp_path, capsys):
    rng = np.random.default_rng(9)
    for case in ("n1", "n2", "n3"):
        make_brats(tmp_path / "new", case, rng, labelled=False)
    bad = tmp_path / "new" / "n2" / "n2_t1ce.nii.gz"
    write_nifti(bad, head_image(rng, (20, 24)))
    out = tmp_path / "out"
    line = cli_error_line(["predict", "--run", str(runs["ours"]), "--input",
                        str(tmp_path / "new"), "--out", str(out), "--device", "cpu"], capsys)
    assert "'n2'" in line and str(bad) in line and "expected a 3D volume" in line
    assert sorted(p.name for p in out.iterdir()) == ["disagreement.csv", "n1.nii.gz"]
    assert "n1," in (out / "disagreement.csv").read_text()


@pytest.mark.parametrize("settings, detail", [
    ({"modalities": ["t1ce", "flair"]}, "modalities: checkpoint ['t1ce', 't2'] vs expected "
                                        "['t1ce', 'flair']"),
    ({"modalities": ["t2", "t1ce"]}, "modalities: checkpoint ['t1ce', 't2'] vs expected "
                                     "['t2', 't1ce']"),
    ({"num_classes": 3}, "num_classes: checkpoint 2 vs expected 3"),
    ({"default_normalization": {"scheme": "zscore_nonzero"}}, "preprocessing: checkpoint"),
])
def test_checkpoint_from_another_configuration_is_refused(runs, tmp_path, capsys, settings,
                                                          detail):
    run, cache = _clone(runs, tmp_path)
    prep = PrepareConfig(**{"modalities": ["t1ce", "t2"], "layout": "brats",
                            "label_mapping": "identity", **settings})
    prepare_dataset(runs["raw"], cache, prep, num_workers=1, progress=False)  # re-prepared
    capsys.readouterr()
    line = cli_error_line(["evaluate", str(run), "--device", "cpu"], capsys)
    assert "best.pt" in line and "another configuration" in line and detail in line
    line = cli_error_line(["train", "--out", str(run), "--resume", "--quiet"], capsys)
    assert "last.pt" in line and detail in line
    assert not (run / "eval").exists()


def test_checkpoint_of_another_method_is_refused(runs, tmp_path, capsys):
    import shutil

    run, _ = _clone(runs, tmp_path)
    shutil.copy(runs["supervised"] / "checkpoints" / "best.pt", run / "checkpoints" / "best.pt")
    line = cli_error_line(["evaluate", str(run), "--device", "cpu"], capsys)
    assert "best.pt" in line and "method: checkpoint 'supervised' vs expected 'ours'" in line


def test_resume_with_a_changed_config_names_the_differences(runs, tmp_path, capsys):
    run, _ = _clone(runs, tmp_path)
    before = (run / "checkpoints" / "last.pt").read_bytes()
    line = cli_error_line(["train", "--out", str(run), "--resume", "--iterations", "4",
                        "--set", "model.base_width=4", "--set", "train.channels_last=true",
                        "--quiet"], capsys)
    assert "cannot resume" in line
    assert "model.base_width: 2 -> 4" in line and "train.max_iterations: 2 -> 4" in line
    assert "channels_last" not in line  # speed-only settings may change
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    line = cli_error_line(["train", "--out", str(run), "--quiet", "--config",
                        str(run / "config.yaml")], capsys)
    assert "already holds a training run" in line and "--resume" in line


def test_batchnorm_with_one_value_per_channel_is_explained(runs, tmp_path, capsys):
    line = cli_error_line(["train", "--out", str(tmp_path / "bn"), "--cache", str(runs["cache"]),
                           "--config", "demo", "--method", "supervised", "--labeled", "2",
                           "--iterations", "1", "--quiet", "--device", "cpu",
                           "--set", "train.crop_size=[16,16,16]", "--set", "train.labeled_bs=1",
                           "--set", "train.batch_size=1", "--set", "model.base_width=2",
                           "--set", "train.num_workers=0", "--set", "splits.val=1",
                           "--set", "splits.test=1"], capsys)
    assert "BatchNorm saw one value per channel" in line and "model.norm=instance" in line


def test_resume_accepts_changed_speed_only_settings(runs, tmp_path):
    from duetseg.data.cache import Cache
    from duetseg.data.splits import load_splits
    from duetseg.run.config import load_run_config
    from duetseg.training.run import prepare_run_dir

    run, _ = _clone(runs, tmp_path)
    cfg = load_run_config(run)
    faster = cfg.model_copy(update={"train": cfg.train.model_copy(
        update={"num_workers": 0, "channels_last": True, "compile": True})})
    splits = prepare_run_dir(faster, Cache(cfg.cache), run, resume=True)
    assert splits == load_splits(run / "splits.json")
    assert load_run_config(run).train.channels_last is True  # the new values are saved


def test_checkpoint_without_preprocessing_fingerprint_still_loads(tmp_path):
    from duetseg.run.checkpoint import check_compatible

    meta = {"modalities": ["a", "b"], "num_classes": 2, "preprocessing": "abc"}
    old = {"meta": {"modalities": ["a", "b"], "num_classes": 2}}  # written before the key
    check_compatible(old, meta, tmp_path / "old.pt")
    with pytest.raises(ConfigError, match="preprocessing: checkpoint 'xyz'"):
        check_compatible({"meta": {**meta, "preprocessing": "xyz"}}, meta, tmp_path / "n.pt")
