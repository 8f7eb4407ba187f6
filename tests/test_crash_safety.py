"""Crash safety: SIGKILL mid-way then re-run gives the uninterrupted result; no code runs
from a checkpoint or config; a NaN loss keeps the last good checkpoint."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from _cli import cli_error_line
from _crash import assert_same_state, overrides, run_cli, signal_when, start_cli, tmp_files

import duetseg.training.trainer as trainer_mod
from duetseg.config import PrepareConfig, load_config
from duetseg.errors import ConfigError, DuetsegError
from duetseg.run.checkpoint import load_checkpoint
from duetseg.run.config import load_run_config
from duetseg.training import train
from duetseg.workflows.predict import predict_folder

pytestmark = pytest.mark.usefixtures("one_thread")

PREP = PrepareConfig(modalities=["t1ce", "t2"], layout="brats", label_mapping="whole_tumour")


@pytest.fixture(scope="module")
def data(tmp_path_factory, synthetic_cache):
    root = tmp_path_factory.mktemp("crash")
    cache = synthetic_cache(root, n_cases=40, shape=(32, 32, 24), seed=2)
    return root, root / "raw", cache


@pytest.fixture(scope="module")
def tiny_run(data):
    """A barely trained run (2 iterations), in process."""
    root, _, cache = data
    cfg = load_config("demo", [f"cache={cache.root}", *overrides(**{
        "train.max_iterations": 2, "train.val_every": 2, "train.checkpoint_every": 2})])
    train(cfg, root / "tiny_run", progress=False)
    return root / "tiny_run"


def _kill_when(proc, ready, log: Path) -> bool:
    """SIGKILL the process group once ``ready()``; False if the run finished first."""
    killed = signal_when(proc, ready, log)
    assert not killed or proc.returncode == -signal.SIGKILL
    return killed


def test_killed_prepare_finishes_with_the_uninterrupted_cache(data, tmp_path):
    _, raw, ref = data
    out = tmp_path / "cache"
    args = ["prepare", str(raw), "--out", str(out), "--modalities", "t1ce", "t2",
            "--workers", "2"]
    proc = start_cli(args, tmp_path / "killed.log")
    if _kill_when(proc, lambda: any(out.glob("synth_*.json")), tmp_path / "killed.log"):
        assert not (out / "dataset.json").exists()  # written last, once all cases are done
    run_cli(args, tmp_path / "rerun.log")
    assert tmp_files(out) == []
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in ref.root.iterdir())
    for name in names:
        a, b = out / name, ref.root / name
        if name.endswith(".npy"):
            x, y = np.load(a), np.load(b)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        else:
            assert json.loads(a.read_text()) == json.loads(b.read_text()), name


def _train_overrides() -> list[str]:
    return overrides(**{"train.max_iterations": 12, "train.checkpoint_every": 3,
                        "train.val_every": 6})


def _train_args(cache: Path, out: Path) -> list[str]:
    args = ["train", "--out", str(out), "--cache", str(cache), "--config", "demo", "--quiet"]
    for item in _train_overrides():
        args += ["--set", item]
    return args


@pytest.fixture(scope="module")
def killed_training(data, tmp_path_factory):
    """An uninterrupted run, and the same run SIGKILLed right after its first checkpoint
    appears and then resumed (``--resume``): both as real subprocesses."""
    _, _, cache = data
    root = tmp_path_factory.mktemp("train")
    full, part = root / "full", root / "part"
    train(load_config("demo", [f"cache={cache.root}", *_train_overrides()]), full,
          progress=False)
    proc = start_cli(_train_args(cache.root, part), root / "killed.log")
    _kill_when(proc, lambda: (part / "checkpoints" / "last.pt").exists(), root / "killed.log")
    run_cli([*_train_args(cache.root, part), "--resume"], root / "resumed.log")
    return full, part


def test_killed_training_resumes_to_the_identical_checkpoint(killed_training):
    full, part = killed_training
    assert tmp_files(part) == []
    for name in ("last.pt", "best.pt"):
        a = load_checkpoint(full / "checkpoints" / name)
        b = load_checkpoint(part / "checkpoints" / name)
        assert a["iteration"] == b["iteration"]
        assert_same_state(a["method"], b["method"], f"{name}:method")
        assert_same_state(a["optimizer"], b["optimizer"], f"{name}:optimizer")
        assert_same_state(a, b, name)
    assert load_checkpoint(full / "checkpoints" / "last.pt")["iteration"] == 12


def test_killed_training_keeps_the_whole_log(killed_training):
    full, part = killed_training
    assert (full / "log.csv").read_text() == (part / "log.csv").read_text()


def test_killed_predict_finishes_with_the_uninterrupted_masks(data, tiny_run, tmp_path):
    _, raw, _ = data
    manifest = tmp_path / "cases.csv"
    manifest.write_text("case,t1ce,t2\n" + "".join(
        f"c{i:02d},{raw}/synth_{i:03d}/synth_{i:03d}_t1ce.nii.gz,"
        f"{raw}/synth_{i:03d}/synth_{i:03d}_t2.nii.gz\n" for i in range(12)))
    ref, out = tmp_path / "ref", tmp_path / "out"
    base = ["predict", "--run", str(tiny_run), "--input", str(manifest), "--device", "cpu"]
    predict_folder(tiny_run, manifest, ref, device="cpu", progress=False)
    proc = start_cli([*base, "--out", str(out)], tmp_path / "killed.log")
    _kill_when(proc, lambda: any(out.glob("c*.nii.gz")), tmp_path / "killed.log")
    run_cli([*base, "--out", str(out)], tmp_path / "rerun.log")
    assert tmp_files(out) == []
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in ref.iterdir())
    assert len([n for n in names if n.endswith(".nii.gz")]) == 12
    for name in names:
        if name.endswith(".nii.gz"):
            a, b = nib.load(out / name), nib.load(ref / name)
            assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj)), name
            assert np.array_equal(a.affine, b.affine), name
        else:
            assert (out / name).read_text() == (ref / name).read_text(), name


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted(path: Path, marker: Path) -> Path:
    torch.save({"iteration": 1, "method": {"w": torch.zeros(1)}, "hook": _Payload(marker)},
               path)
    return path


def test_crafted_checkpoint_is_refused_without_running_its_code(tmp_path):
    # control: the payload does run code when loaded unsafely
    control = tmp_path / "control_marker"
    torch.load(_crafted(tmp_path / "control.pt", control), weights_only=False)
    assert control.exists()
    marker = tmp_path / "marker"
    with pytest.raises(ConfigError, match="cannot be loaded safely.*GLOBAL io.open.*run code"):
        load_checkpoint(_crafted(tmp_path / "evil.pt", marker))
    assert not marker.exists()


def _copyrun_cli(run: Path, dst: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, dst))


def test_crafted_checkpoint_in_a_run_dir_is_refused_by_evaluate_and_resume(
        tiny_run, tmp_path, capsys):
    run = _copyrun_cli(tiny_run, tmp_path / "run")
    marker = tmp_path / "marker"
    for name in ("best.pt", "last.pt"):
        _crafted(run / "checkpoints" / name, marker)
    line = cli_error_line(["evaluate", str(run), "--device", "cpu"], capsys)
    assert "best.pt" in line and "cannot be loaded safely" in line
    line = cli_error_line(["train", "--out", str(run), "--resume", "--quiet"], capsys)
    assert "last.pt" in line and "cannot be loaded safely" in line
    assert not marker.exists()


def test_a_checkpoint_that_is_not_a_duetseg_checkpoint_is_refused(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ConfigError, match="not a duetseg checkpoint"):
        load_checkpoint(tmp_path / "tensor.pt")


EVIL_YAML = 'train: !!python/object/apply:os.system ["touch {marker}"]\n'


def test_yaml_config_cannot_run_code_and_unknown_keys_are_errors(tmp_path, capsys):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.yaml"
    evil.write_text(EVIL_YAML.format(marker=marker))
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(evil)
    line = cli_error_line(["train", "--out", str(tmp_path / "r"), "--config", str(evil)], capsys)
    assert "evil.yaml" in line
    assert not marker.exists()
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("extends: demo\ntrain:\n  max_iterations: 5\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(unknown)


def test_tampered_run_config_cannot_run_code(tiny_run, tmp_path, capsys):
    run = _copyrun_cli(tiny_run, tmp_path / "run")
    marker = tmp_path / "marker"
    cfg_path = run / "config.yaml"
    cfg_path.write_text(cfg_path.read_text() + EVIL_YAML.replace("train", "extra")
                        .format(marker=marker))
    with pytest.raises(ConfigError, match="config.yaml"):
        load_run_config(run)
    line = cli_error_line(["evaluate", str(run), "--device", "cpu"], capsys)
    assert "config.yaml" in line
    assert not marker.exists()


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
        data, tmp_path, monkeypatch):
    _, _, cache = data
    bad_at = 7
    real_build = trainer_mod.build_method

    def build_with_nan(ctx):
        method = real_build(ctx)
        real_losses = method.training_losses

        def losses(image, label, iteration):
            out = real_losses(image, label, iteration)
            if iteration == bad_at:
                out["loss"] = out["loss"] * float("nan")
            return out

        method.training_losses = losses
        return method

    cfg = load_config("demo", [f"cache={cache.root}", *overrides(**{
        "train.max_iterations": 9, "train.checkpoint_every": 3, "train.val_every": 6})])
    run = tmp_path / "run"
    monkeypatch.setattr(trainer_mod, "build_method", build_with_nan)
    with pytest.raises(DuetsegError, match=rf"non-finite loss at iteration {bad_at}\b.*"
                                           rf"last good checkpoint.*train\.lr"):
        train(cfg, run, progress=False)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["iteration"] == 6  # the last multiple of checkpoint_every before 7
    assert all(torch.isfinite(t).all() for t in state["method"].values()
               if t.is_floating_point())
    assert tmp_files(run) == []
    # the kept checkpoint is a valid starting point: resuming without the fault finishes
    monkeypatch.setattr(trainer_mod, "build_method", real_build)
    result = train(cfg, run, resume=True, progress=False)
    assert result.iteration == 9
    assert not math.isnan(load_checkpoint(run / "checkpoints" / "last.pt")["best_metric"])
