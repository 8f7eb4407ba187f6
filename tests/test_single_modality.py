"""A one-modality cache: single-network methods train, evaluate and predict on it; DuetNet
methods train two branches that both read the one modality; building a method with one
branch per modality on it directly is refused with a clear error."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from _tiny_run import train_tiny

from duetseg import Segmenter
from duetseg.config import MethodConfig, ModelConfig, PrepareConfig, load_config
from duetseg.data.prepare import prepare_dataset
from duetseg.data.synthetic import make_synthetic_dataset
from duetseg.errors import ConfigError
from duetseg.export import export_model
from duetseg.methods import MethodContext, build_method
from duetseg.methods.dual_branch import BranchOutputs
from duetseg.methods.registry import METHODS, get_method_class
from duetseg.run.config import load_run_config
from duetseg.run.layout import RunDir
from duetseg.training import train
from duetseg.workflows.evaluate import evaluate_run
from duetseg.workflows.predict import predict_folder

pytestmark = pytest.mark.usefixtures("one_thread")

BRANCHED = sorted(n for n in METHODS if issubclass(get_method_class(n), BranchOutputs))
SINGLE = sorted(n for n in METHODS if n not in BRANCHED)


@pytest.fixture(scope="module")
def t2_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2only")
    raw = make_synthetic_dataset(root / "raw", n_cases=6, shape=(32, 32, 24), seed=5)
    prep = PrepareConfig(modalities=["t2"], layout="brats", label_mapping="whole_tumour")
    return prepare_dataset(raw, root / "cache", prep, num_workers=1, progress=False)


def test_cache_holds_one_channel(t2_cache):
    assert t2_cache.modalities == ["t2"]
    case = t2_cache.cases[0]
    assert t2_cache.load_image(case).shape[0] == 1


def test_branch_per_modality_methods_are_refused():
    assert {"ours", "mmcml", "cmc", "supervised"} <= set(BRANCHED)
    for name in BRANCHED:
        ctx = MethodContext(("t2",), 2, ModelConfig(base_width=4), MethodConfig(name=name),
                            max_iterations=20)
        with pytest.raises(ConfigError, match=rf"'{name}'.*at least 2 modalities.*\['t2'\]"):
            build_method(ctx)


def test_supervised_with_one_vnet_takes_one_modality():
    ctx = MethodContext(("t2",), 2, ModelConfig(base_width=4), MethodConfig(
        name="supervised", options={"network": "vnet"}), max_iterations=20)
    method = build_method(ctx)
    assert method.primary_output == "prediction" and not method.uses_unlabeled
    assert method.eval().net(torch.rand(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)


@pytest.mark.parametrize("name", SINGLE)
def test_single_network_methods_take_one_channel(name):
    torch.manual_seed(0)
    ctx = MethodContext(("t2",), 2, ModelConfig(base_width=4, dropout=0.0),
                        MethodConfig(name=name), max_iterations=20)
    method = build_method(ctx).train()
    image = torch.rand(4, 1, 16, 16, 16)
    label = (image[:2, 0] > 0.7).long()
    if not method.uses_unlabeled:
        image = image[:2]
    losses = method.training_losses(image, label, 15)
    assert all(torch.isfinite(v).all() for v in losses.values()), losses
    losses["loss"].backward()


def test_mean_teacher_runs_end_to_end_on_one_modality(t2_cache, tmp_path):
    over = {"cache": str(t2_cache.root), "method.name": "mean_teacher", "splits.labeled": 2,
            "splits.val": 0, "splits.test": 2, "model.base_width": 4,
            "train.crop_size": [16, 16, 16], "train.batch_size": 4, "train.labeled_bs": 2,
            "train.num_workers": 0, "train.max_iterations": 4, "train.val_every": 4,
            "train.checkpoint_every": 4, "inference.sw_batch_size": 2}
    cfg = load_config("demo", [f"{k}={json.dumps(v)}" for k, v in over.items()])
    run = tmp_path / "run"
    assert train(cfg, run, progress=False).iteration == 4
    summary = evaluate_run(run, "test", progress=False)
    assert np.isfinite(summary["metrics"]["prediction"]["1"]["dice"]["mean"])
    case = json.loads((run / "splits.json").read_text())["test"][0]
    out = tmp_path / "pred"
    predict_folder(run, t2_cache.root.parent / "raw", out, progress=False)
    ref = nib.load(t2_cache.properties(case)["label_file"])
    assert nib.load(out / f"{case}.nii.gz").shape == ref.shape


def test_ours_on_one_modality_trains_two_branches_predicts_and_exports(t2_cache, tmp_path):
    two = {"method.name": "ours", "train.max_iterations": 3, "train.val_every": 3,
           "train.checkpoint_every": 3}  # model.branches unset: fitted to the one modality
    run = train_tiny(t2_cache, tmp_path / "run", **two)
    saved = load_run_config(RunDir(run)).model
    assert (saved.branches, saved.branch_input) == (2, "all")
    summary = evaluate_run(run, "test", progress=False)
    assert [(s["name"], s["modality"]) for s in summary["output_specs"]] == [
        ("branch_a", None), ("branch_b", None), ("ensemble", None)]
    assert summary["outputs"]["branch_b"] == "branch reading t2"
    assert all(np.isfinite(summary["metrics"][o]["1"]["dice"]["mean"])
               for o in ("branch_a", "branch_b", "ensemble"))
    raw = t2_cache.root.parent / "raw"
    predict_folder(run, raw, tmp_path / "pred", progress=False)
    model = export_model(run, tmp_path / "model.zip", onnx=True)
    case = json.loads((run / "splits.json").read_text())["test"][0]
    mask = np.asanyarray(nib.load(tmp_path / "pred" / f"{case}.nii.gz").dataobj)
    t2 = raw / case / f"{case}_t2.nii.gz"
    for backend in ("torch", "onnxruntime"):
        seg = Segmenter.load(model, device="cpu", backend=backend)
        out = seg.predict({"t2": str(t2)}, case=case)
        assert seg.modalities == ["t2"] and out.modalities_used == ["t2"]
        assert out.disagreement is not None  # two branches to compare
        assert np.array_equal(out.mask, mask), backend


def test_modality_dropout_on_one_modality_stops_training(t2_cache, tmp_path):
    with pytest.raises(ConfigError, match=r"train\.modality_dropout.*two modalities"):
        train_tiny(t2_cache, tmp_path / "run", **{"model.branches": 2,
                                                  "model.branch_input": "all",
                                                  "train.modality_dropout": 0.3})
