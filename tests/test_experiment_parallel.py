"""``duetseg experiment --parallel N``: thread split, selection, errors and a real 2-way run."""

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
import yaml

from duetseg.cli import main
from duetseg.errors import ConfigError
from duetseg.workflows import experiment, parallel
from duetseg.workflows.experiment import load_grid, plan_grid
from duetseg.workflows.parallel import (
    LOG_NAME,
    check_parallel,
    child_env,
    child_overrides,
    pending_runs,
    resolve_parallel,
    threads_per_child,
)


def _grid(tmp_path, text="cache: cache\nmethods: [ours, supervised]\nlabeled: [2]\nseeds: [0]\n"):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(text)
    return grid_file


def _finish(run, split="test"):
    summary = run.run_dir / "eval" / split / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text("{}")


def test_threads_are_split_between_children():
    assert threads_per_child(1, cores=16) == 16
    assert threads_per_child(4, cores=16) == 4
    assert threads_per_child(3, cores=16) == 5
    assert threads_per_child(4, cores=2) == 1
    assert threads_per_child(2) >= 1
    env = child_env(3, base={"PATH": "/bin"})
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    assert env["PATH"] == "/bin"


def test_command_line_parallel_wins_over_the_grid_key(tmp_path):
    grid = load_grid(_grid(tmp_path, "cache: c\nparallel: 3\n"))
    assert resolve_parallel(None, grid) == 3
    assert resolve_parallel(1, grid) == 1
    assert resolve_parallel(None, load_grid(_grid(tmp_path, "cache: c\n"))) == 1
    with pytest.raises(ConfigError):
        load_grid(_grid(tmp_path, "cache: c\nparallel: 0\n"))


def test_torchrun_with_parallel_is_an_error(tmp_path, monkeypatch, capsys):
    check_parallel(1, {"WORLD_SIZE": "2"})
    check_parallel(4, {"WORLD_SIZE": "1"})
    with pytest.raises(ConfigError, match="torchrun"):
        check_parallel(2, {"WORLD_SIZE": "2"})
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as exc:
        main(["experiment", str(_grid(tmp_path)), "--parallel", "2"])
    assert exc.value.code == 1
    assert "torchrun" in capsys.readouterr().err


def test_pending_runs_skip_finished_ones(tmp_path):
    grid = load_grid(_grid(tmp_path))
    ours, supervised = plan_grid(grid)
    _finish(ours)
    _finish(supervised, split="val")  # evaluated on another split: still pending
    done, todo = pending_runs(grid)
    assert [r.name for r in done] == [ours.name]
    assert [r.name for r in todo] == [supervised.name]


def test_loader_workers_of_children(tmp_path):
    grid = load_grid(_grid(tmp_path, "cache: c\nvariants:\n  w: ['train.num_workers=2']\n"))
    plain, with_workers = plan_grid(grid)
    assert child_overrides(plain, 1, cuda=False) == []
    assert child_overrides(plain, 2, cuda=False) == ["train.num_workers=0"]
    assert child_overrides(with_workers, 2, cuda=False) == []
    (gpu,) = child_overrides(plain, 2, cuda=True)
    assert int(gpu.split("=")[1]) >= 1


def test_parallel_one_stays_in_process(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(experiment, "run_grid",
                        lambda grid, progress: calls.append("seq") or [grid.out / "a"])
    monkeypatch.setattr(parallel, "run_grid_parallel",
                        lambda f, n, progress: calls.append(n) or [f.parent / "a"])
    grid_file = _grid(tmp_path, "cache: c\nparallel: 3\n")
    main(["experiment", str(grid_file), "--parallel", "1"])
    main(["experiment", str(grid_file)])
    assert calls == ["seq", 3]


def test_sigterm_terminates_the_children(tmp_path, monkeypatch):
    grid_file = _grid(tmp_path)
    real_popen, children = subprocess.Popen, []

    def sleeper(command, **kwargs):  # a child that would run for a minute
        children.append(real_popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                   **kwargs))
        return children[-1]

    monkeypatch.setattr(subprocess, "Popen", sleeper)
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        parallel.run_grid_parallel(grid_file, 2, poll_s=0.05)
    timer.join()
    assert len(children) == 2 and all(c.returncode is not None for c in children)
    assert signal.getsignal(signal.SIGTERM) is before


TINY = {
    "splits.labeled": 2, "splits.val": 1, "splits.test": 1, "model.base_width": 2,
    "model.dropout": 0.0, "train.crop_size": [16, 16, 16], "train.batch_size": 4,
    "train.labeled_bs": 2, "train.max_iterations": 2, "train.val_every": 2,
    "train.checkpoint_every": 2, "inference.sw_batch_size": 8, "inference.overlap": 0.25,
}


def test_two_runs_in_parallel_a_failing_one_is_reported_and_reruns_skip(tmp_path, capsys,
                                                                         synthetic_cache):
    synthetic_cache(tmp_path)
    grid = {
        "cache": "cache", "base": "demo", "out": "runs", "methods": ["ours", "supervised"],
        "labeled": [2], "seeds": [0], "checkpoint": "last",
        "overrides": [f"{k}={json.dumps(v)}" for k, v in TINY.items()],
        "variants": {"bad": ["train.no_such_option=1"]},
    }
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump(grid))
    with pytest.raises(SystemExit) as exc:
        main(["experiment", str(grid_file), "--parallel", "2", "--quiet"])
    assert exc.value.code == 1
    out, err = capsys.readouterr()
    bad_log = tmp_path / "runs" / "ours-bad_lab2_seed0" / LOG_NAME
    assert "1 of 3 run(s) failed" in err and str(bad_log) in err
    assert "no_such_option" in bad_log.read_text()
    assert out.count("finished") == 2 and "FAILED" in out
    for name in ("ours_lab2_seed0", "supervised_lab2_seed0"):
        run_dir = tmp_path / "runs" / name
        assert (run_dir / "eval" / "test" / "summary.json").is_file()
        assert "complete" in (run_dir / LOG_NAME).read_text()

    del grid["variants"]
    grid_file.write_text(yaml.safe_dump(grid))
    main(["experiment", str(grid_file), "--parallel", "2"])
    out = capsys.readouterr().out
    assert out.count("done, skipped") == 2 and "started" not in out
