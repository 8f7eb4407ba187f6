"""Crash and interrupt tests: ``python -m duetseg`` as a real subprocess, state comparison
(not collected as tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

__all__ = ["ENV", "TINY", "assert_same_state", "overrides", "run_cli", "signal_when",
           "start_cli", "tmp_files"]

# one thread: the runs to compare bit for bit use the same arithmetic order
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TINY = {
    "splits.labeled": 2, "splits.val": 1, "splits.test": 1, "model.base_width": 2,
    "train.crop_size": [16, 16, 16], "train.batch_size": 4, "train.labeled_bs": 2,
    "train.num_workers": 0, "train.device": "cpu", "train.log_every": 1,
    "inference.sw_batch_size": 4,
}


def overrides(**over) -> list[str]:
    """``key=json`` config overrides: :data:`TINY` updated with ``over``."""
    return [f"{k}={json.dumps(v)}" for k, v in {**TINY, **over}.items()]


def tmp_files(root: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes under ``root``."""
    return sorted(p for p in root.rglob(".tmp-*"))


def _default_sigint() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler: give the child Ctrl-C's usual meaning.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(args: list[str], log: Path, stderr: Path | None = None) -> subprocess.Popen:
    """``python -m duetseg ARGS`` in its own process group, with SIGINT at its default
    (whatever the test runner inherited), output to ``log`` (stderr too, unless ``stderr``
    names its own file)."""
    with log.open("w") as out:
        err = subprocess.STDOUT if stderr is None else stderr.open("w")
        try:
            return subprocess.Popen([sys.executable, "-m", "duetseg", *args], stdout=out,
                                    stderr=err, env=ENV, start_new_session=True,
                                    preexec_fn=_default_sigint)
        finally:
            if stderr is not None:
                err.close()


def run_cli(args: list[str], log: Path) -> None:
    """Run the CLI to completion; it must succeed."""
    proc = start_cli(args, log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]


def signal_when(proc: subprocess.Popen, ready: Callable[[], bool], log: Path,
                sig: int = signal.SIGKILL, timeout: float = 300) -> bool:
    """Send ``sig`` to the whole process group (as Ctrl-C does for SIGINT) once ``ready()``.

    Returns:
        True if signalled (the process is then waited for: ``proc.returncode``), False if
        it finished first (successfully: a valid if weaker test).
    """
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if ready():
            os.killpg(proc.pid, sig)
            proc.wait(timeout=120)
            return True
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no progress marker in {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.005)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return False


def assert_same_state(a: dict, b: dict, where: str) -> None:
    """Two nested state dicts (checkpoints) are equal, tensors bit for bit."""
    assert a.keys() == b.keys(), where
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            assert_same_state(x, y, f"{where}.{key}")
        elif isinstance(x, list | tuple):
            assert len(x) == len(y), f"{where}.{key}"
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                assert_same_state({i: u}, {i: v}, f"{where}.{key}")
        elif isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y), f"{where}.{key}"
        else:
            assert x == y or (x != x and y != y), f"{where}.{key}: {x!r} != {y!r}"
