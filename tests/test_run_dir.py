"""``duetseg.run``: the run directory layout in one place, and what imports what."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from duetseg.run.layout import CHECKPOINT_NAMES, EvalDir, RunDir


def test_run_dir_paths_follow_the_documented_layout(tmp_path):
    run = RunDir(tmp_path / "run")
    root = tmp_path / "run"
    assert run.root == root
    assert run.config_file == root / "config.yaml"
    assert run.splits_file == root / "splits.json"
    assert run.log_file == root / "log.csv"
    assert run.tensorboard_dir == root / "tensorboard"
    assert run.checkpoint_dir == root / "checkpoints"
    assert run.last_checkpoint == root / "checkpoints" / "last.pt"
    assert run.best_checkpoint == root / "checkpoints" / "best.pt"
    assert [run.checkpoint(n) for n in CHECKPOINT_NAMES] == [
        root / "checkpoints" / "best.pt", root / "checkpoints" / "last.pt"]
    assert run.suggestions_file == root / "suggestions.csv"
    ev = run.eval("test")
    assert ev == EvalDir(root / "eval" / "test")
    assert ev.metrics_file == root / "eval" / "test" / "metrics.csv"
    assert ev.summary_file == root / "eval" / "test" / "summary.json"
    assert ev.predictions_dir == root / "eval" / "test" / "predictions"
    assert ev.prediction("c1") == root / "eval" / "test" / "predictions" / "c1.nii.gz"
    assert ev.prediction("c1", "branch_a") == (
        root / "eval" / "test" / "predictions" / "branch_a" / "c1.nii.gz")


def test_run_dir_is_a_path_like_that_names_its_folder(tmp_path):
    run = RunDir(str(tmp_path / "run"))
    assert isinstance(run.root, Path)
    assert str(run) == os.fspath(run) == str(tmp_path / "run")
    assert RunDir(run) == run and Path(run) == run.root
    assert f"{run}/splits.json" == str(run.splits_file)


def test_run_dir_state_checks_and_temporaries(tmp_path):
    run = RunDir(tmp_path)
    assert not run.resumable and not run.is_evaluated("test")
    assert run.find_checkpoint("best") == run.last_checkpoint  # no best: fall back to last
    run.checkpoint_dir.mkdir()
    run.last_checkpoint.write_bytes(b"x")
    assert run.resumable
    run.best_checkpoint.write_bytes(b"x")
    assert run.find_checkpoint("best") == run.best_checkpoint
    assert run.find_checkpoint("last") == run.last_checkpoint
    run.eval("val").summary_file.parent.mkdir(parents=True)
    run.eval("val").summary_file.write_text("{}")
    assert run.is_evaluated("val") and not run.is_evaluated("test")
    stale = [tmp_path / ".tmp-log.csv-1", run.checkpoint_dir / ".tmp-last.pt-2.pt"]
    for path in stale:
        path.write_bytes(b"partial")
    run.remove_temporaries()
    assert not any(p.exists() for p in stale)
    assert run.last_checkpoint.exists() and run.best_checkpoint.exists()


def test_load_run_config_refuses_a_folder_without_config(tmp_path):
    from duetseg.errors import ConfigError
    from duetseg.run.config import load_run_config

    with pytest.raises(ConfigError, match="is not a duetseg run directory"):
        load_run_config(tmp_path)


def _imports(module: str, code: str = "") -> list[str]:
    """duetseg.* and torch modules loaded by importing ``module`` in a fresh interpreter."""
    script = (f"import sys, {module}\n{code}\n"
              "print('\\n'.join(m for m in sys.modules if m.startswith(('duetseg.', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


@pytest.mark.parametrize("module", ["duetseg.reporting.report", "duetseg.workflows.predict",
                                    "duetseg.workflows.suggest", "duetseg.workflows.evaluate"])
def test_reporting_and_prediction_do_not_import_training(module):
    loaded = _imports(module)
    assert module in loaded
    assert not [m for m in loaded if m.startswith("duetseg.training")]


def test_run_package_and_layout_do_not_import_torch():
    loaded = _imports("duetseg.run", "from duetseg.run import RunDir, load_run_config")
    assert "duetseg.run.layout" in loaded and "duetseg.run.config" in loaded
    assert not [m for m in loaded if m == "torch" or m.startswith("torch.")]
    assert "duetseg.run.trained" not in loaded
    assert not [m for m in _imports("duetseg.reporting.report") if m == "torch"]


def test_run_package_exports_resolve_lazily():
    import duetseg.run as run_pkg
    from duetseg.run import trained

    assert run_pkg.load_trained_run is trained.load_trained_run
    assert set(run_pkg.__all__) <= set(dir(run_pkg))
    with pytest.raises(AttributeError):
        _ = run_pkg.no_such_name
