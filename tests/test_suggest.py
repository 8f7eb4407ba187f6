"""``duetseg suggest``: ranking the unlabelled training cases by how little a run is trusted."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from _cli import cli_error_line

from duetseg.cli import main
from duetseg.config import load_config
from duetseg.data.splits import load_splits
from duetseg.training import train
from duetseg.workflows.suggest import SUGGEST_COLUMNS, score_case, suggest_cases


def _probs(fg: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - fg, fg]).astype(np.float32)


def test_score_uses_the_union_of_foregrounds_and_branch_disagreement():
    a = np.zeros((4, 4, 4), np.float32)
    b = np.zeros((4, 4, 4), np.float32)
    a[0, 0, :2] = 0.9  # both branches agree on two voxels
    b[0, 0, :2] = 0.9
    b[1, 1, 1] = 0.8  # branch b alone sees a third voxel (a says 0)
    probs = {"branch_a": _probs(a), "branch_b": _probs(b), "ensemble": _probs((a + b) / 2)}
    s = score_case(probs, "ensemble", voxel_ml=0.008, branches=["branch_a", "branch_b"])
    assert s["disagreement"] == pytest.approx(0.8 / 3)  # mean of |a - b| over 3 voxels
    assert s["foreground_voxels"] == 2  # the ensemble (0.4 at the third voxel) keeps two
    assert s["volume_ml"] == pytest.approx(0.016)
    empty = score_case({"prediction": _probs(np.zeros((2, 2, 2)))}, "prediction", 1.0)
    assert empty == {"disagreement": 0.0, "entropy": 0.0, "foreground_voxels": 0,
                     "volume_ml": 0.0}


def test_single_network_score_is_the_entropy():
    fg = np.full((3, 3, 3), 0.6, np.float32)
    s = score_case({"prediction": _probs(fg)}, "prediction", 1.0)
    ent = -(0.6 * np.log(0.6) + 0.4 * np.log(0.4)) / np.log(2)
    assert s["disagreement"] == pytest.approx(ent, rel=1e-5)
    assert s["entropy"] == pytest.approx(ent, rel=1e-5)


@pytest.fixture(scope="module")
def run(tmp_path_factory, synthetic_cache):
    root = tmp_path_factory.mktemp("suggest")
    cache = synthetic_cache(root, n_cases=6, seed=2)
    over = {"cache": str(cache.root), "splits.labeled": 1, "splits.val": 0, "splits.test": 1,
            "model.base_width": 2, "model.dropout": 0.0, "train.crop_size": [16, 16, 16],
            "train.num_workers": 0, "train.max_iterations": 2, "train.val_every": 2,
            "train.checkpoint_every": 2, "inference.sw_batch_size": 8}
    train(load_config("demo", [f"{k}={json.dumps(v)}" for k, v in over.items()]),
          root / "run", progress=False)
    return root / "run"


def test_suggest_ranks_every_unlabelled_case_and_writes_the_csv(run, tmp_path, capsys):
    rows = suggest_cases(run, progress=False)
    unlabelled = load_splits(run / "splits.json")["unlabeled"]
    assert sorted(r["case"] for r in rows) == sorted(unlabelled) and len(rows) == 4
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    scores = [r["disagreement"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    out = tmp_path / "s.csv"
    main(["suggest", "--run", str(run), "--top", "2", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    with out.open() as fh:
        table = list(csv.DictReader(fh))
    assert tuple(table[0]) == SUGGEST_COLUMNS and len(table) == 4
    assert table[0]["case"] == rows[0]["case"] and table[0]["case"] in printed
    assert table[2]["case"] not in printed.split("wrote")[0]


def test_suggest_without_unlabelled_cases_is_a_clear_error(run, tmp_path, capsys):
    splits = json.loads((run / "splits.json").read_text())
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("config.yaml",):
        (copy / name).write_text((run / name).read_text())
    (copy / "checkpoints").mkdir()
    (copy / "checkpoints" / "last.pt").write_bytes((run / "checkpoints" / "last.pt").read_bytes())
    splits["labeled"] = splits["train"]
    splits["unlabeled"] = []
    (copy / "splits.json").write_text(json.dumps(splits))
    line = cli_error_line(["suggest", "--run", str(copy)], capsys)
    assert "no unlabelled training case" in line
