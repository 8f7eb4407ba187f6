"""``duetseg export`` and ``predict --model``: one file, no run, no cache, same masks."""

import hashlib
import io
import json
import pickle
import shutil
import sys
import zipfile

import nibabel as nib
import numpy as np
import pytest
import torch
from _nifti import LPS, RAS, head_image, write_nifti

from duetseg.cli import main
from duetseg.errors import ConfigError, ModelFileError
from duetseg.export import export_model, load_model_file, read_package
from duetseg.export.onnx import OrtPredictor
from duetseg.export.package import FORMAT_VERSION, MANIFEST
from duetseg.run.checkpoint import load_checkpoint
from duetseg.run.layout import RunDir
from duetseg.run.trained import load_trained_run, predict_probabilities
from duetseg.workflows.predict import predict_folder

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (33, 27, 21)  # larger than the 16^3 windows, no axis a multiple of 16


@pytest.fixture(scope="module")
def new_cases(tmp_path_factory):
    """Two unlabelled BraTS-style cases, one RAS and one LPS."""
    root = tmp_path_factory.mktemp("new_cases")
    rng = np.random.default_rng(11)
    for case, affine in (("new_ras", RAS), ("new_lps", LPS)):
        for mod in ("t1ce", "t2"):
            write_nifti(root / case / f"{case}_{mod}.nii.gz", head_image(rng, SHAPE), affine)
    return root


def _masks(folder):
    return {p.name: np.asanyarray(nib.load(str(p)).dataobj)
            for p in sorted(folder.glob("*.nii.gz"))}


def _rewrite(src, dst, change):
    """Copy the model file ``src`` to ``dst`` with ``change(members)`` applied to its members."""
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    change(members)
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dst


def _relist(members, name):
    """Update the manifest's checksum of ``name`` (a consistent but crafted file)."""
    manifest = json.loads(members[MANIFEST])
    manifest["members"][name] = {"sha256": hashlib.sha256(members[name]).hexdigest(),
                                 "size": len(members[name])}
    members[MANIFEST] = json.dumps(manifest).encode()


def test_model_file_predicts_like_the_run_without_run_or_cache(exported_models, new_cases,
                                                               tmp_path, monkeypatch, capsys):
    run = shutil.copytree(exported_models["ours_run"], tmp_path / "run")
    before = tmp_path / "before"
    main(["predict", "--run", str(run), "--input", str(new_cases), "--out", str(before),
          "--save-probabilities", "--save-disagreement", "--quiet", "--device", "cpu"])
    main(["export", str(run), str(tmp_path / "model.zip"), "--checkpoint", "best"])
    assert "model.zip" in capsys.readouterr().out
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    shutil.move(tmp_path / "model.zip", empty / "model.zip")
    shutil.rmtree(run)
    cache = exported_models["cache"]
    hidden = cache.with_name("cache_hidden")
    cache.rename(hidden)  # the cache is gone while predicting from the file
    try:
        monkeypatch.chdir(empty)
        main(["predict", "--model", "model.zip", "--input", str(new_cases), "--out", "out",
              "--save-probabilities", "--save-disagreement", "--quiet", "--device", "cpu"])
    finally:
        hidden.rename(cache)
    expected, got = _masks(before), _masks(empty / "out")
    assert sorted(expected) == sorted(got) and len(got) == 6
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name
    assert (before / "disagreement.csv").read_text() == (empty / "out" / "disagreement.csv"
                                                         ).read_text()
    assert sorted(p.name for p in empty.iterdir()) == ["model.zip", "out"]


def test_run_predicts_without_its_cache_and_old_runs_fall_back(exported_models, new_cases,
                                                               tmp_path):
    run = exported_models["ours_run"]
    assert RunDir(run).preprocessing_file.is_file()
    reference = tmp_path / "ref"
    predict_folder(run, new_cases, reference, device="cpu", progress=False)
    cache = exported_models["cache"]
    hidden = cache.with_name("cache_hidden")
    old = shutil.copytree(run, tmp_path / "old_run")
    RunDir(old).preprocessing_file.unlink()  # a run trained before preprocessing.json
    cache.rename(hidden)
    try:
        predict_folder(run, new_cases, tmp_path / "no_cache", device="cpu", progress=False)
        with pytest.raises(ConfigError, match="dataset.json"):
            predict_folder(old, new_cases, tmp_path / "old_no_cache", progress=False)
    finally:
        hidden.rename(cache)
    predict_folder(old, new_cases, tmp_path / "old", device="cpu", progress=False)
    for folder in ("no_cache", "old"):
        got = _masks(tmp_path / folder)
        assert all(np.array_equal(m, got[n]) for n, m in _masks(reference).items()), folder


def test_model_file_contents(exported_models):
    path = exported_models["ours_zip"]
    pkg = read_package(path)
    manifest = pkg.manifest
    assert manifest["format_version"] == FORMAT_VERSION and manifest["duetseg_version"]
    assert set(manifest["members"]) == {"config.json", "preprocessing.json", "model.json",
                                        "weights.npz", "model.onnx"}
    for name, entry in manifest["members"].items():
        assert entry["sha256"] == hashlib.sha256(pkg.members[name]).hexdigest()
    run = RunDir(exported_models["ours_run"])
    saved = json.loads(run.preprocessing_file.read_text())
    prep = pkg.json("preprocessing.json")
    assert prep == saved and prep["modalities"] == ["t1ce", "t2"] and prep["num_classes"] == 2
    assert {"target_spacing", "crop_margin", "normalization", "label_mapping",
            "num_classes"} <= set(prep["settings"])
    config = pkg.json("config.json")
    assert config["method"]["name"] == "ours" and config["train"]["crop_size"] == [16, 16, 16]
    info = pkg.json("model.json")
    assert info["primary_output"] == "ensemble" and info["checkpoint"] == "best"
    assert info["onnx"]["outputs"] == ["branch_a", "branch_b", "ensemble"]
    state = load_checkpoint(run.best_checkpoint)["method"]
    with np.load(io.BytesIO(pkg.members["weights.npz"]), allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(state)
        for key, value in state.items():
            assert np.array_equal(npz[key], value.numpy()), key


BAD_FILES = {
    "changed member": (lambda m: m.__setitem__("config.json", m["config.json"] + b" "),
                       "member config.json has been changed"),
    "newer format": (lambda m: m.__setitem__(MANIFEST, m[MANIFEST].replace(
        b'"format_version": 1', b'"format_version": 99')), "format version 99 is newer"),
    "missing member": (lambda m: m.pop("weights.npz"), "missing member weights.npz"),
    "pickled weights": (lambda m: (m.__setitem__("weights.npz", pickle.dumps({"w": 1})),
                                   _relist(m, "weights.npz")), "weights.npz is a pickle"),
    "unexpected member": (lambda m: m.__setitem__("extra.pkl", b"x"), "unexpected member"),
}


def _object_npz(members):
    buf = io.BytesIO()
    np.savez(buf, w=np.array([{"a": 1}], dtype=object))
    members["weights.npz"] = buf.getvalue()
    _relist(members, "weights.npz")


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_bad_model_file_is_refused_in_one_line(kind, exported_models, tmp_path, capsys):
    change, message = BAD_FILES[kind]
    bad = _rewrite(exported_models["mean_teacher_zip"], tmp_path / "bad.zip", change)
    with pytest.raises(ModelFileError, match=message) as exc:
        load_model_file(bad)
    assert exc.value.file == str(bad)
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--model", str(bad), "--input", str(tmp_path), "--out",
              str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 1 and len(err.splitlines()) == 1
    assert str(bad) in err and message in err
    assert not (tmp_path / "out").exists()


def test_pickled_arrays_and_non_zip_files_are_refused(exported_models, tmp_path):
    bad = _rewrite(exported_models["mean_teacher_zip"], tmp_path / "obj.zip", _object_npz)
    with pytest.raises(ModelFileError, match="pickled objects"):
        load_model_file(bad)
    torch.save({"method": {}}, tmp_path / "model.pt")  # a torch pickle is not a model file
    with pytest.raises(ModelFileError, match="not a duetseg model file"):
        load_model_file(tmp_path / "model.pt")
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model_file(tmp_path / "absent.zip")


def test_a_failed_export_leaves_nothing(exported_models, tmp_path, monkeypatch):
    out = tmp_path / "model.zip"

    def fail(*args, **kwargs):
        raise RuntimeError("export failed")

    monkeypatch.setattr("duetseg.export.model.export_onnx", fail)
    with pytest.raises(RuntimeError):
        export_model(exported_models["ours_run"], out, onnx=True)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="not a duetseg run directory"):
        export_model(tmp_path, out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", ["ours", "mean_teacher"])
def test_onnxruntime_probabilities_match_torch(method, exported_models):
    path = exported_models[f"{method}_zip"]
    torch_model = load_model_file(path, device="cpu", backend="torch")
    ort_model = load_model_file(path, backend="onnxruntime")
    assert isinstance(ort_model.predictor, OrtPredictor)
    assert not isinstance(torch_model.predictor, OrtPredictor)
    image = np.random.default_rng(5).normal(size=(2, 37, 29, 21)).astype(np.float32)
    expected = predict_probabilities(torch_model, image)
    got = predict_probabilities(ort_model, image)
    assert sorted(got) == sorted(expected) and expected
    for name, probs in expected.items():
        assert got[name].shape == probs.shape
        np.testing.assert_allclose(got[name], probs, atol=1e-4, rtol=0)
    run = load_trained_run(exported_models[f"{method}_run"], device="cpu")
    from_run = predict_probabilities(run, image)
    for name, probs in expected.items():  # the file holds exactly the run's weights
        assert np.array_equal(from_run[name], probs)


def test_onnxruntime_backend_through_predict(exported_models, new_cases, tmp_path):
    path = exported_models["ours_zip"]
    predict_folder(path, new_cases, tmp_path / "torch", device="cpu", progress=False,
                   save_probabilities=True, backend="torch")
    main(["predict", "--model", str(path), "--backend", "onnxruntime", "--input",
          str(new_cases), "--out", str(tmp_path / "ort"), "--save-probabilities", "--quiet"])
    for case in ("new_ras", "new_lps"):
        a = nib.load(str(tmp_path / "torch" / f"{case}_prob.nii.gz")).get_fdata()
        b = nib.load(str(tmp_path / "ort" / f"{case}_prob.nii.gz")).get_fdata()
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def test_auto_backend_is_onnxruntime_on_the_cpu_when_it_can(exported_models, tmp_path,
                                                            monkeypatch):
    with_graph = exported_models["mean_teacher_zip"]
    assert isinstance(load_model_file(with_graph, device="cpu").predictor, OrtPredictor)
    plain = export_model(exported_models["mean_teacher_run"], tmp_path / "plain.zip")
    assert not isinstance(load_model_file(plain, device="cpu").predictor, OrtPredictor)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    assert not isinstance(load_model_file(with_graph, device="cpu").predictor, OrtPredictor)


def test_onnxruntime_needs_the_graph_and_the_package(exported_models, tmp_path, monkeypatch,
                                                     capsys):
    plain = export_model(exported_models["mean_teacher_run"], tmp_path / "plain.zip")
    assert not read_package(plain).has("model.onnx")
    with pytest.raises(ModelFileError, match="no ONNX graph .*--onnx"):
        load_model_file(plain, backend="onnxruntime")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ModelFileError, match=r"needs onnxruntime.*duetseg\[onnx\]"):
        load_model_file(exported_models["mean_teacher_zip"], backend="onnxruntime")
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--run", str(exported_models["mean_teacher_run"]), "--backend",
              "onnxruntime", "--input", str(tmp_path), "--out", str(tmp_path / "o")])
    assert stop.value.code == 2 and "--model" in capsys.readouterr().err
