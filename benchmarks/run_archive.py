"""Per-case results of finished protocol runs, kept in the repository.

Run folders (``runs/``) hold weights, caches and predictions and are never committed, so a
fresh checkout starts without them and a cross-validated table that takes several sessions
to train would be lost with each machine. When a protocol run finishes, the few small files
a report reads (resolved config, splits, training log, per-case test metrics and their
summary; a few kB) are copied to ``benchmarks/results/<protocol>/<run>/``, a folder that is
committed. A run found there counts as finished: it is not trained again, and the summaries
(``real_brats.py --cv ... --summarize``) read it like a run folder. Analyses that need
weights or predictions (``generalisation_probe.py``, ``collapse_check.py``) still need the
run folder itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from common import REPO

from duetseg.run.layout import RunDir

__all__ = ["ARCHIVE", "ARCHIVED_FILES", "archive_path", "archive_run", "finished_run"]

ARCHIVE = REPO / "benchmarks" / "results"
RUNS = REPO / "runs"
ARCHIVED_FILES = ("config.yaml", "splits.json", "log.csv", "eval/test/metrics.csv",
                  "eval/test/summary.json")


def archive_path(run_dir: Path) -> Path:
    """Where the results of ``run_dir`` (a folder under ``runs/``) are kept."""
    return ARCHIVE / Path(run_dir).resolve().relative_to(RUNS)


def archive_run(run_dir: Path) -> Path:
    """Copy the report files of an evaluated run into the archive; returns the copy.

    The copy is assembled under a temporary name and renamed, so an interrupted copy never
    looks like a finished run. An existing copy is replaced.

    Raises:
        FileNotFoundError: ``run_dir`` has no test evaluation.
    """
    run_dir = Path(run_dir)
    if not RunDir(run_dir).is_evaluated("test"):
        raise FileNotFoundError(f"{run_dir}: no test evaluation to archive")
    dest = archive_path(run_dir)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for name in ARCHIVED_FILES:
        src = run_dir / name
        if src.is_file():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tmp / name)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def finished_run(run_dir: Path) -> Path | None:
    """The evaluated run folder of ``run_dir``, else its archived copy, else ``None``.

    A finished run folder that was not archived yet (e.g. trained before the archive
    existed) is archived on the way.
    """
    run_dir = Path(run_dir)
    if RunDir(run_dir).is_evaluated("test"):
        if not RunDir(archive_path(run_dir)).is_evaluated("test"):
            archive_run(run_dir)
        return run_dir
    copy = archive_path(run_dir)
    return copy if RunDir(copy).is_evaluated("test") else None
