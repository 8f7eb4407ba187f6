"""The command line: multi-value options, prepare through the CLI, clear errors."""

import json

import numpy as np
import pytest
from _nifti import make_brats

from duetseg.cli import main
from duetseg.cli_support import expand_multi_value


def test_multi_value_modalities_are_expanded():
    argv = ["prepare", "in", "--modalities", "t1ce", "t2", "--out", "c"]
    assert expand_multi_value(argv) == [
        "prepare", "in", "--modalities", "t1ce", "--modalities", "t2", "--out", "c"]


def test_prepare_cli_builds_a_whole_tumour_cache(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(3):
        make_brats(tmp_path / "raw", f"c{i}", rng, modalities=("t1ce", "t2", "flair"))
    main(["prepare", str(tmp_path / "raw"), "--out", str(tmp_path / "cache"),
          "--modalities", "t2", "t1ce", "--workers", "1"])
    meta = json.loads((tmp_path / "cache" / "dataset.json").read_text())
    assert meta["modalities"] == ["t2", "t1ce"]
    assert meta["settings"]["label_mapping"] == "whole_tumour"  # BraTS layout default
    assert len(meta["cases"]) == 3
    assert "3 cases" in capsys.readouterr().out


def test_errors_are_one_clear_line(tmp_path, capsys):
    rng = np.random.default_rng(1)
    make_brats(tmp_path / "raw", "caseA", rng, modalities=("t1ce", "t2"))
    make_brats(tmp_path / "raw", "caseX", rng, modalities=("t1ce",))
    with pytest.raises(SystemExit) as exc:
        main(["prepare", str(tmp_path / "raw"), "--out", str(tmp_path / "c"),
              "--modalities", "t1ce", "t2", "--workers", "1"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "caseX" in err and "t2" in err and "Traceback" not in err


def test_methods_and_presets_commands(capsys):
    main(["methods"])
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("ours") for line in out)
    assert any(line.startswith("supervised") for line in out)
    main(["presets"])
    assert "brats19" in capsys.readouterr().out


def test_train_without_cache_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "run"), "--config", "demo"])
    assert "cache" in capsys.readouterr().err
