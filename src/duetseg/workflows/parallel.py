"""``duetseg experiment GRID --parallel N``: up to N runs of a grid train at once.

The parent plans the grid, skips finished runs and starts every pending run as a child
process ``python -m duetseg experiment-run GRID RUN`` (at most N alive). A child trains and
evaluates exactly one run, in its own run directory with its own seed, and resumes from
``checkpoints/last.pt`` like a sequential grid does. Its stdout and stderr go to
``<run_dir>/experiment.log`` (appended; not a terminal, so progress is plain lines).

Sharing the machine:

* **CPU threads.** Each child gets ``max(1, cores // N)`` intra-op threads
  (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``torch.set_num_threads``), cores being the
  CPUs this process may run on (``os.sched_getaffinity``).
* **Loader workers.** Unless the grid's ``overrides`` or the run's variant set
  ``train.num_workers``, a child trains on the CPU with 0 workers (loading a batch of
  memory-mapped crops in the training process costs less than N x workers competing for
  the same cores) and on a GPU with ``"auto"`` split between the N children.
* **GPU.** Every child uses the device its config names (``train.device``, by default the
  first GPU): N small runs share one GPU. Use ``CUDA_VISIBLE_DEVICES`` per grid to spread
  grids over several GPUs; torchrun (``WORLD_SIZE`` > 1) with N > 1 is refused.

A failed child does not stop the others: at the end the failed runs and their logs are
listed and the command fails. Ctrl-C or SIGTERM terminates the children; their runs resume
on the next invocation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from duetseg.errors import ConfigError, DuetsegError
from duetseg.run.layout import RunDir
from duetseg.workflows.experiment import GridConfig, GridRun, load_grid, plan_grid

__all__ = [
    "LOG_NAME", "ParallelRunError", "check_parallel", "child_env", "child_overrides",
    "pending_runs", "resolve_parallel", "run_child", "run_grid_parallel",
    "threads_per_child",
]

LOG_NAME = "experiment.log"
_TERMINATE_GRACE_S = 10.0


class ParallelRunError(DuetsegError):
    """Some runs of a parallel grid failed (the message lists them and their logs)."""


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_child(parallel: int, cores: int | None = None) -> int:
    """Intra-op threads of each of ``parallel`` children: ``max(1, cores // parallel)``.

    Args:
        parallel: children running at once.
        cores: usable CPU cores (default: ``os.sched_getaffinity``).
    """
    return max(1, (cores if cores is not None else _cores()) // max(1, parallel))


def resolve_parallel(cli: int | None, grid: GridConfig) -> int:
    """Runs at once: the command line's ``--parallel`` if given, else the grid's key.

    Raises:
        ConfigError: a value below 1.
    """
    n = grid.parallel if cli is None else cli
    if n < 1:
        raise ConfigError(f"--parallel must be at least 1, got {n}")
    return n


def check_parallel(parallel: int, environ: Mapping[str, str] | None = None) -> None:
    """Refuse ``parallel`` > 1 under torchrun.

    Raises:
        ConfigError: ``WORLD_SIZE`` > 1 and ``parallel`` > 1.
    """
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if parallel > 1 and world > 1:
        raise ConfigError(
            f"--parallel {parallel} cannot run under torchrun (WORLD_SIZE={world}): a "
            "distributed run already uses every process; use one or the other")


def pending_runs(grid: GridConfig) -> tuple[list[GridRun], list[GridRun]]:
    """Split the planned runs into (finished, pending); finished = evaluated on the split."""
    done, todo = [], []
    for run in plan_grid(grid):
        (done if RunDir(run.run_dir).is_evaluated(grid.split) else todo).append(run)
    return done, todo


def child_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A child's environment: ``base`` (default ``os.environ``) with its thread limits."""
    env = dict(os.environ if base is None else base)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONUNBUFFERED="1")
    return env


def child_overrides(run: GridRun, parallel: int, cuda: bool) -> list[str]:
    """Overrides a child adds to its run: the loader workers, unless the grid sets them."""
    if parallel <= 1 or any(o.startswith("train.num_workers=") for o in run.overrides):
        return []
    if not cuda:
        return ["train.num_workers=0"]
    from duetseg.data.loader import resolve_num_workers

    return [f"train.num_workers={resolve_num_workers('auto', parallel)}"]


def run_child(grid_file: Path, name: str, threads: int, parallel: int,
              progress: bool = True) -> None:
    """Body of ``duetseg experiment-run``: train and evaluate one run of the grid."""
    import torch

    from duetseg.config import load_config
    from duetseg.workflows.experiment import find_run, run_one

    torch.set_num_threads(max(1, threads))
    grid = load_grid(grid_file)
    run = find_run(grid, name)
    device = load_config(grid.base, run.overrides).train.device
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    run_one(grid, run, progress=progress,
            extra_overrides=child_overrides(run, parallel, cuda))


@dataclass
class _Child:
    index: int
    run: GridRun
    process: subprocess.Popen
    log: IO[bytes]
    start: float


def _terminate(children: list[_Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + _TERMINATE_GRACE_S
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
        child.log.close()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_grid_parallel(grid_file: Path, parallel: int, progress: bool = True,
                      poll_s: float = 0.5) -> list[Path]:
    """Train and evaluate the unfinished runs of a grid, up to ``parallel`` at once.

    Args:
        grid_file: the grid YAML (each child reads it again).
        parallel: children alive at most.
        progress: children print progress lines to their logs.
        poll_s: seconds between two looks at the children.

    Returns:
        Every run directory of the grid.

    Raises:
        ConfigError: under torchrun.
        ParallelRunError: some children failed (the others have completed).
    """
    check_parallel(parallel)
    grid = load_grid(grid_file)
    runs = plan_grid(grid)
    done, todo = pending_runs(grid)
    total = len(runs)
    number = {r.name: i for i, r in enumerate(runs, 1)}
    for run in done:
        print(f"[{number[run.name]}/{total}] {run.name}: done, skipped", flush=True)
    threads = threads_per_child(parallel)
    env = child_env(threads)
    queue = list(todo)
    alive: list[_Child] = []
    failed: list[tuple[GridRun, int]] = []
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while queue or alive:
            while queue and len(alive) < parallel:
                run = queue.pop(0)
                alive.append(_start(grid_file, run, number[run.name], threads, parallel,
                                    progress, env))
                print(f"[{number[run.name]}/{total}] {run.name}: started "
                      f"(log {run.run_dir / LOG_NAME})", flush=True)
            time.sleep(poll_s)
            for child in [c for c in alive if c.process.poll() is not None]:
                alive.remove(child)
                child.log.close()
                code = child.process.returncode
                took = time.monotonic() - child.start
                status = "finished" if code == 0 else f"FAILED (exit code {code})"
                print(f"[{child.index}/{total}] {child.run.name}: {status} in {took:.0f} s",
                      flush=True)
                if code != 0:
                    failed.append((child.run, code))
    except KeyboardInterrupt:
        print(f"interrupted: stopping {len(alive)} running run(s); they resume next time",
              file=sys.stderr, flush=True)
        _terminate(alive)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failed:
        lines = "\n".join(f"  {run.name} (exit code {code}): {run.run_dir / LOG_NAME}"
                          for run, code in failed)
        raise ParallelRunError(
            f"{len(failed)} of {len(todo)} run(s) failed (the others completed); see their "
            f"logs:\n{lines}")
    return [r.run_dir for r in runs]


def _start(grid_file: Path, run: GridRun, index: int, threads: int, parallel: int,
           progress: bool, env: dict[str, str]) -> _Child:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run.run_dir / LOG_NAME, "ab")  # noqa: SIM115 - closed when the child ends
    command = [sys.executable, "-m", "duetseg", "experiment-run", str(grid_file), run.name,
               "--threads", str(threads), "--parallel", str(parallel)]
    if not progress:
        command.append("--quiet")
    log.write(f"$ {' '.join(command)}\n".encode())
    log.flush()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env)
    return _Child(index, run, process, log, time.monotonic())
