"""K-fold cross-validation splits (``splits.folds`` / ``splits.fold``)."""

from __future__ import annotations

import pytest

from duetseg.config import SplitConfig, load_config
from duetseg.data.splits import cv_folds, make_splits
from duetseg.errors import ConfigError

CASES = [f"case{i:02d}" for i in range(15)]


def _fold(k: int, **kw) -> dict[str, list[str]]:
    cfg = SplitConfig(folds=5, fold=k, val=kw.pop("val", 0), labeled=kw.pop("labeled", 2), **kw)
    return make_splits(CASES + ["unl_a", "unl_b"], CASES, cfg)


def test_every_case_is_tested_exactly_once():
    tested = [c for k in range(5) for c in _fold(k)["test"]]
    assert sorted(tested) == CASES
    assert all(len(_fold(k)["test"]) == 3 for k in range(5))


def test_fold_split_partitions_and_keeps_unlabelled_only_cases_in_train():
    for k in range(5):
        s = _fold(k, val=1)
        assert len(s["val"]) == 1 and len(s["labeled"]) == 2
        assert not set(s["test"]) & (set(s["train"]) | set(s["val"]))
        assert not set(s["val"]) & set(s["train"])
        assert {"unl_a", "unl_b"} <= set(s["unlabeled"])
        assert sorted(s["train"] + s["val"] + s["test"]) == sorted(CASES + ["unl_a", "unl_b"])


def test_partition_depends_on_seed_not_on_fold():
    assert cv_folds(CASES, 5, 0) == cv_folds(list(reversed(CASES)), 5, 0)
    assert cv_folds(CASES, 5, 0) != cv_folds(CASES, 5, 1)
    assert [_fold(k)["test"] for k in range(5)] == cv_folds(CASES, 5, 0)
    # the labelled subset is seeded per fold and reproducible
    assert _fold(2)["labeled"] == _fold(2)["labeled"]
    assert _fold(2, seed=3)["test"] != _fold(2)["test"]


def test_bad_fold_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="fold 5 is not one of the 5 folds"):
        load_config(None, ["splits.folds=5", "splits.fold=5"])
    with pytest.raises(ConfigError, match="exclude each other"):
        load_config(None, ["splits.folds=5", f"splits.test_list={tmp_path / 't.txt'}"])
    with pytest.raises(ConfigError, match="at least 5 labelled"):
        make_splits(CASES[:3], CASES[:3], SplitConfig(folds=5, labeled=1, val=0))
    with pytest.raises(ConfigError, match="only 12 training cases"):
        _fold(0, labeled=13)


def test_labeled_list_picks_the_labelled_cases_of_a_fold(tmp_path):
    base = _fold(1)
    chosen = base["labeled"] + base["unlabeled"][:2]
    listing = tmp_path / "labeled.txt"
    listing.write_text("\n".join(chosen) + "\n")
    s = _fold(1, labeled_list=listing)
    assert s["test"] == base["test"] and s["train"] == base["train"]
    assert sorted(s["labeled"]) == sorted(chosen)
    assert sorted(s["unlabeled"]) == sorted(set(base["unlabeled"]) - set(chosen))
    listing.write_text(base["test"][0] + "\n")
    with pytest.raises(ConfigError, match="test part"):
        _fold(1, labeled_list=listing)
