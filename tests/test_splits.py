"""Tests of train / val / test splits and the labelled subset."""

from __future__ import annotations

from pathlib import Path

import pytest

from duetseg.config import SplitConfig
from duetseg.data.splits import load_splits, make_splits, parse_labeled, save_splits
from duetseg.errors import ConfigError

SSL4MIS = Path("/work/shared/data/brats2019-ssl4mis-splits")
CASES = [f"c{i:03d}" for i in range(40)]


def _check_partition(s, cases):
    assert set(s) == {"train", "val", "test", "labeled", "unlabeled"}
    tr, va, te = set(s["train"]), set(s["val"]), set(s["test"])
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert set(s["labeled"]) | set(s["unlabeled"]) == tr
    assert not set(s["labeled"]) & set(s["unlabeled"])
    assert tr | va | te <= set(cases)
    for v in s.values():
        assert v == sorted(v)


def test_parse_labeled():
    assert parse_labeled("5%", 250) == 12  # round(12.5) -> 12
    assert parse_labeled("10%", 250) == 25
    assert parse_labeled("1%", 20) == 1  # at least one
    assert parse_labeled("12", 250) == 12
    assert parse_labeled(12, 250) == 12
    for bad in ("0", 0, -3, "300", "abc", "0%", "12.5"):
        with pytest.raises(ConfigError):
            parse_labeled(bad, 250)


def test_fraction_split_sizes_and_seed():
    cfg = SplitConfig(val=0.1, test=0.2, labeled="25%", seed=1)
    s = make_splits(CASES, CASES, cfg)
    _check_partition(s, CASES)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (28, 4, 8)
    assert len(s["labeled"]) == 7
    assert make_splits(CASES, CASES, cfg) == s
    other = make_splits(CASES, CASES, SplitConfig(val=0.1, test=0.2, labeled="25%", seed=2))
    assert other["test"] != s["test"]


def test_counts_and_labelled_count():
    s = make_splits(CASES, CASES, SplitConfig(val=3, test=5, labeled=4))
    _check_partition(s, CASES)
    assert (len(s["val"]), len(s["test"]), len(s["labeled"])) == (3, 5, 4)
    assert len(s["unlabeled"]) == 40 - 3 - 5 - 4


def test_unlabelled_only_cases_go_to_train():
    labelled = CASES[:20]
    s = make_splits(CASES, labelled, SplitConfig(val=0.2, test=0.2, labeled="5%"))
    _check_partition(s, CASES)
    assert set(CASES[20:]) <= set(s["unlabeled"])
    assert set(s["val"]) | set(s["test"]) | set(s["labeled"]) <= set(labelled)
    assert len(s["val"]) == 4 and len(s["test"]) == 4
    assert len(s["labeled"]) == max(1, round(0.05 * len(s["train"])))


def test_impossible_sizes():
    with pytest.raises(ConfigError):
        make_splits(CASES[:5], CASES[:5], SplitConfig(val=2, test=3))
    with pytest.raises(ConfigError):  # more labelled than the labelled training cases
        make_splits(CASES, CASES[:10], SplitConfig(val=2, test=2, labeled=8))


def _write(path: Path, ids: list[str]) -> Path:
    path.write_text("\n".join(ids[:2]) + "\n\n" + "\n".join(ids[2:]) + "\n")
    return path


def test_list_files(tmp_path):
    train = _write(tmp_path / "train.txt", CASES[10:])
    val = _write(tmp_path / "val.txt", CASES[:4])
    test = _write(tmp_path / "test.txt", CASES[4:10])
    extra = ["u1", "u2"]  # unlabelled-only cases outside the lists
    cfg = SplitConfig(train_list=train, val_list=val, test_list=test, labeled=3)
    s = make_splits(CASES + extra, CASES, cfg)
    _check_partition(s, CASES + extra)
    assert s["val"] == sorted(CASES[:4]) and s["test"] == sorted(CASES[4:10])
    assert s["labeled"] == sorted(CASES[10:13])  # the first lines of train.txt
    assert set(extra) <= set(s["unlabeled"])
    lab = _write(tmp_path / "lab.txt", CASES[20:25])
    s2 = make_splits(CASES, CASES, cfg.model_copy(update={"labeled_list": lab}))
    assert s2["labeled"] == sorted(CASES[20:25])


def test_unknown_ids_error_names_ids_and_file(tmp_path):
    train = _write(tmp_path / "train.txt", CASES[10:] + ["ghost_1", "ghost_2"])
    with pytest.raises(ConfigError, match="ghost_1.*ghost_2") as err:
        make_splits(CASES, CASES, SplitConfig(train_list=train))
    assert "train.txt" in str(err.value)


def test_overlapping_lists_and_unlabelled_val(tmp_path):
    train = _write(tmp_path / "train.txt", CASES[5:])
    val = _write(tmp_path / "val.txt", CASES[:6])
    with pytest.raises(ConfigError, match="overlap"):
        make_splits(CASES, CASES, SplitConfig(train_list=train, val_list=val, labeled=2))
    val = _write(tmp_path / "val.txt", CASES[:5])
    with pytest.raises(ConfigError, match="label"):
        make_splits(CASES, CASES[2:], SplitConfig(train_list=train, val_list=val, labeled=2))


def test_save_load_roundtrip(tmp_path):
    s = make_splits(CASES, CASES, SplitConfig())
    save_splits(s, tmp_path / "run" / "splits.json")
    assert load_splits(tmp_path / "run" / "splits.json") == s
    with pytest.raises(ConfigError):
        load_splits(tmp_path / "missing.json")


@pytest.mark.skipif(not SSL4MIS.is_dir(), reason="SSL4MIS split lists not available")
def test_ssl4mis_real_lists():
    lines = {n: [x.strip() for x in (SSL4MIS / f"{n}.txt").read_text().splitlines()
                 if x.strip()] for n in ("train", "val", "test")}
    assert len(lines["train"]) == 250
    cases = lines["train"] + lines["val"] + lines["test"]
    cfg = SplitConfig(train_list=SSL4MIS / "train.txt", val_list=SSL4MIS / "val.txt",
                      test_list=SSL4MIS / "test.txt", labeled="10%")
    s = make_splits(cases, cases, cfg)
    _check_partition(s, cases)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (250, 25, 60)
    assert s["labeled"] == sorted(lines["train"][:25])
    assert len(make_splits(cases, cases, cfg.model_copy(update={"labeled": "5%"}))["labeled"]) \
        == 12
