"""Ctrl-C: every long command exits 130 with one ``interrupted; ...`` line on stderr, leaves
complete files only, and running it again (``train --resume``) finishes the job exactly."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _crash import assert_same_state, overrides, run_cli, signal_when, start_cli, tmp_files

from duetseg import __version__
from duetseg.cli import main
from duetseg.config import load_config
from duetseg.run.checkpoint import load_checkpoint
from duetseg.training import train
from duetseg.workflows.predict import predict_folder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory, synthetic_cache):
    root = tmp_path_factory.mktemp("interrupt")
    cache = synthetic_cache(root, n_cases=30, shape=(32, 32, 24), seed=4)
    return root, root / "raw", cache


def _interrupt(args: list[str], ready, tmp_path: Path, name: str) -> tuple[bool, str]:
    """Run the CLI, SIGINT its process group (what Ctrl-C does) once ``ready()``.

    Returns:
        (whether it was interrupted before finishing, its stderr).
    """
    log, err = tmp_path / f"{name}.log", tmp_path / f"{name}.err"
    proc = start_cli(args, log, stderr=err)
    hit = signal_when(proc, ready, err, sig=signal.SIGINT)
    stderr = err.read_text()
    if hit:
        assert proc.returncode == 130, stderr[-3000:]
    return hit, stderr


def _assert_one_line(stderr: str, expected: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert [line for line in lines if "interrupted" in line] == [expected], stderr
    assert lines[-1] == expected


def test_interrupted_prepare_exits_130_and_resumes_to_the_same_cache(data, tmp_path):
    _, raw, ref = data
    out = tmp_path / "cache"
    args = ["prepare", str(raw), "--out", str(out), "--modalities", "t1ce", "t2",
            "--workers", "2"]
    hit, stderr = _interrupt(args, lambda: any(out.glob("synth_*.json")), tmp_path, "int")
    if hit:
        _assert_one_line(stderr, "interrupted; run the same command again to resume "
                                 "(finished cases are kept)")
        assert tmp_files(out) == []
        assert not (out / "dataset.json").exists()
        done = sorted(p.stem for p in out.glob("synth_*.json"))
        assert 0 < len(done) < 30  # stopped early: the queued cases were dropped
        for case in done:  # every case left behind is complete and correct
            for suffix in (".npy", "_seg.npy"):
                assert np.array_equal(np.load(out / f"{case}{suffix}"),
                                      np.load(ref.root / f"{case}{suffix}")), case
        leftovers = {p.name.split(".")[0].removesuffix("_seg") for p in out.glob("*.npy")}
        assert leftovers == set(done)  # no case without its json
    run_cli(args, tmp_path / "rerun.log")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.root.iterdir())
    assert json.loads((out / "dataset.json").read_text())["cases"] == json.loads(
        (ref.root / "dataset.json").read_text())["cases"]


def _train_overrides() -> list[str]:
    return overrides(**{"train.max_iterations": 9, "train.checkpoint_every": 3,
                        "train.val_every": 3})


def test_interrupted_training_resumes_to_the_uninterrupted_run(data, tmp_path):
    _, _, cache = data
    full, part = tmp_path / "full", tmp_path / "part"
    train(load_config("demo", [f"cache={cache.root}", *_train_overrides()]), full,
          progress=False)
    args = ["train", "--out", str(part), "--cache", str(cache.root), "--config", "demo",
            "--quiet"]
    for item in _train_overrides():
        args += ["--set", item]
    hit, stderr = _interrupt(args, (part / "checkpoints" / "last.pt").exists, tmp_path, "t")
    if hit:
        _assert_one_line(stderr, f"interrupted; duetseg train --resume --out {part} resumes "
                                 f"it from its last checkpoint")
        assert tmp_files(part) == []
        assert load_checkpoint(part / "checkpoints" / "last.pt")["iteration"] < 9
    run_cli([*args, "--resume"], tmp_path / "resumed.log")
    for name in ("last.pt", "best.pt"):
        assert_same_state(load_checkpoint(full / "checkpoints" / name),
                          load_checkpoint(part / "checkpoints" / name), name)
    assert (full / "log.csv").read_text() == (part / "log.csv").read_text()


def test_interrupted_predict_leaves_complete_masks_and_finishes(data, tmp_path):
    root, raw, cache = data
    run = tmp_path / "run"
    train(load_config("demo", [f"cache={cache.root}", *overrides(**{
        "train.max_iterations": 1, "train.val_every": 1, "train.checkpoint_every": 1})]),
        run, progress=False)
    manifest = tmp_path / "cases.csv"
    manifest.write_text("case,t1ce,t2\n" + "".join(
        f"c{i:02d},{raw}/synth_{i:03d}/synth_{i:03d}_t1ce.nii.gz,"
        f"{raw}/synth_{i:03d}/synth_{i:03d}_t2.nii.gz\n" for i in range(12)))
    ref, out = tmp_path / "ref", tmp_path / "out"
    predict_folder(run, manifest, ref, device="cpu", progress=False)
    args = ["predict", "--run", str(run), "--input", str(manifest), "--device", "cpu",
            "--out", str(out), "--skip-existing"]
    hit, stderr = _interrupt(args, lambda: any(out.glob("c*.nii.gz")), tmp_path, "p")
    if hit:
        _assert_one_line(stderr, "interrupted; the masks written so far are complete; run "
                                 "the same command with --skip-existing to predict only "
                                 "the rest")
        assert tmp_files(out) == []
        for path in out.glob("c*.nii.gz"):
            assert np.array_equal(np.asarray(nib.load(path).dataobj),
                                  np.asarray(nib.load(ref / path.name).dataobj)), path.name
    run_cli(args, tmp_path / "rerun.log")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    assert (out / "disagreement.csv").read_text() == (ref / "disagreement.csv").read_text()


def _raise_keyboard_interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(("argv", "target", "hint"), [
    (["evaluate", "RUN"], "duetseg.workflows.evaluate.evaluate_run",
     "run the same command again (the masks written so far are complete; metrics.csv and "
     "summary.json are written at the end)"),
    (["evaluate-folder", "--pred", "p", "--ref", "r", "--out", "o"],
     "duetseg.evaluation.folder.evaluate_folder",
     "nothing was written; run the same command again"),
    (["experiment", "GRID"], "duetseg.workflows.experiment.load_grid",
     "run the same command again to resume (finished runs are kept); unfinished runs "
     "resume from their last checkpoint"),
    (["methods"], "duetseg.methods.available_methods", "run the same command again"),
])
def test_ctrl_c_in_any_command_exits_130_with_one_line(argv, target, hint, monkeypatch,
                                                       capsys):
    monkeypatch.setattr(target, _raise_keyboard_interrupt)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 130
    captured = capsys.readouterr()
    assert captured.err == f"interrupted; {hint}\n"
    assert captured.out == ""


def test_version(capsys):
    main(["--version"])  # returns: exit status 0
    assert capsys.readouterr().out == f"duetseg {__version__}\n"
