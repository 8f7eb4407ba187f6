"""End to end on synthetic data: prepare -> train -> evaluate learns; resume is exact."""

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from duetseg.config import load_config
from duetseg.training import train
from duetseg.workflows.evaluate import evaluate_run
from duetseg.workflows.predict import predict_folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory, synthetic_cache):
    return synthetic_cache(tmp_path_factory.mktemp("pipeline"), n_cases=10, shape=(48, 48, 32),
                           seed=3)


def _cfg(cache, **over):
    base = {
        "cache": str(cache.root), "splits.labeled": 3, "splits.val": 1, "splits.test": 3,
        "model.base_width": 4, "model.dropout": 0.0, "train.crop_size": [32, 32, 16],
        "train.batch_size": 4, "train.labeled_bs": 2, "train.num_workers": 0,
        "train.foreground_prob": 0.5, "train.log_every": 1, "method.rampup_fraction": 0.2,
        "inference.sw_batch_size": 4, "inference.mode": "sliding",
    }
    base.update(over)
    return load_config("demo", [f"{k}={json.dumps(v)}" for k, v in base.items()])


def _losses(run_dir):
    with open(run_dir / "log.csv") as fh:
        return [(int(r["iteration"]), float(r["loss"])) for r in csv.DictReader(fh) if r["loss"]]


def test_train_evaluate_learns_and_writes_original_geometry(cache, tmp_path):
    cfg = _cfg(cache, **{"train.max_iterations": 200, "train.val_every": 100,
                         "train.checkpoint_every": 100, "train.lr": 0.05})
    run = tmp_path / "run"
    result = train(cfg, run, progress=False)
    assert result.iteration == 200
    assert (run / "checkpoints" / "best.pt").exists() and (run / "checkpoints" / "last.pt").exists()
    summary = evaluate_run(run, "test", progress=False)
    dice = summary["metrics"]["ensemble"]["1"]["dice"]["mean"]
    # Chance (an all-foreground or random mask) scores about 3 % here (lesions fill ~1.5 %
    # of a case); 200 iterations of this tiny network reach 60-70 %.
    assert dice > 40, summary["metrics"]
    rows = list(csv.DictReader(open(run / "eval" / "test" / "metrics.csv")))
    assert {r["output"] for r in rows} == {"branch_a", "branch_b", "ensemble"}
    splits = json.loads((run / "splits.json").read_text())
    case = splits["test"][0]
    pred = nib.load(run / "eval" / "test" / "predictions" / f"{case}.nii.gz")
    ref = nib.load(cache.properties(case)["label_file"])
    assert pred.shape == ref.shape
    np.testing.assert_allclose(pred.affine, ref.affine, atol=1e-5)
    # predict on raw inputs gives the same masks as evaluate
    raw_root = cache.root.parent / "raw"
    out = tmp_path / "pred"
    predict_folder(run, raw_root, out, progress=False)
    again = nib.load(out / f"{case}.nii.gz")
    assert np.array_equal(np.asarray(again.dataobj), np.asarray(pred.dataobj))
    assert (out / "disagreement.csv").exists()


def test_kill_and_resume_reproduces_the_loss_trajectory(cache, tmp_path):
    cfg = _cfg(cache, **{"train.max_iterations": 16, "train.val_every": 8,
                         "train.checkpoint_every": 8, "model.dropout": 0.5,
                         "train.spatial_augment": 0.5, "train.intensity_augment": 0.5,
                         "train.modality_dropout": 0.3})
    full = tmp_path / "full"
    train(cfg, full, progress=False)
    part = tmp_path / "part"
    train(cfg, part, progress=False, stop_at=12)  # "killed" after 12, last checkpoint at 8
    train(cfg, part, resume=True, progress=False)
    a, b = _losses(full), _losses(part)
    assert [i for i, _ in a] == [i for i, _ in b] == list(range(16))
    np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=1e-6)


def test_existing_run_is_not_clobbered(cache, tmp_path):
    from duetseg.errors import ConfigError

    cfg = _cfg(cache, **{"train.max_iterations": 2, "train.val_every": 2})
    train(cfg, tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, tmp_path / "r", progress=False)
