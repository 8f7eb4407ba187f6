"""The report files of evaluated runs, kept in the repository beside the benchmarks.

Run folders hold weights, caches and predictions and are not committed. When a run is
evaluated, the few small files a report reads (resolved config, splits, training log,
per-case test metrics and their summary) are copied to an archive folder that is
committed, at the same relative path: ``<runs root>/cv/K3/ours_f0`` is kept as
``<archive root>/cv/K3/ours_f0``. :func:`duetseg.reporting.collect.collect_runs` reads an
archived copy like the run folder itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from duetseg.run.layout import RunDir
from duetseg.workflows.experiment import GridConfig, plan_grid

__all__ = ["archived_files", "archive_path", "archive_run", "archive_grid", "finished_run"]


def archived_files(run_dir: Path | RunDir, split: str = "test") -> list[Path]:
    """The files of a run that its archived copy holds (whichever of them exist).

    Args:
        run_dir: the run directory.
        split: the evaluated split kept.

    Returns:
        Config, splits, training log, the split's metrics and summary, and the
        missing-modality record.
    """
    paths = RunDir(run_dir)
    evaluation = paths.eval(split)
    return [paths.config_file, paths.splits_file, paths.log_file, evaluation.metrics_file,
            evaluation.summary_file, paths.missing_inputs_file]


def archive_path(run_dir: Path, runs_root: Path, archive_root: Path) -> Path:
    """Where the archived copy of ``run_dir`` (a folder under ``runs_root``) lives.

    Args:
        run_dir: the run directory.
        runs_root: the folder all archived runs live under.
        archive_root: the committed archive folder.

    Returns:
        ``archive_root`` joined with the run's path relative to ``runs_root``.
    """
    return Path(archive_root) / Path(run_dir).resolve().relative_to(Path(runs_root).resolve())


def archive_run(run_dir: Path, dest: Path, split: str = "test") -> Path:
    """Copy the report files of an evaluated run to ``dest`` (replacing an older copy).

    The copy is assembled under a temporary name and renamed, so an interrupted copy never
    looks like a finished run.

    Args:
        run_dir: the evaluated run directory.
        dest: the archived copy's folder.
        split: the evaluated split kept.

    Returns:
        ``dest``.

    Raises:
        FileNotFoundError: ``run_dir`` has no evaluation of ``split``.
    """
    run_dir, dest = Path(run_dir), Path(dest)
    if not RunDir(run_dir).is_evaluated(split):
        raise FileNotFoundError(f"{run_dir}: no {split} evaluation to archive")
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for src in archived_files(run_dir, split):
        if src.is_file():
            target = tmp / src.relative_to(run_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def finished_run(run_dir: Path, runs_root: Path, archive_root: Path,
                 split: str = "test") -> Path | None:
    """The evaluated run folder of ``run_dir``, else its archived copy, else ``None``.

    An evaluated run folder whose copy is missing is archived on the way.

    Args:
        run_dir: the run directory (under ``runs_root``).
        runs_root: see :func:`archive_path`.
        archive_root: see :func:`archive_path`.
        split: the evaluated split.

    Returns:
        The folder to report from, or ``None`` when the run is not finished anywhere.
    """
    run_dir = Path(run_dir)
    copy = archive_path(run_dir, runs_root, archive_root)
    if RunDir(run_dir).is_evaluated(split):
        if not RunDir(copy).is_evaluated(split):
            archive_run(run_dir, copy, split)
        return run_dir
    return copy if RunDir(copy).is_evaluated(split) else None


def archive_grid(grid: GridConfig, runs_root: Path, archive_root: Path) -> list[Path]:
    """Archive every evaluated run of a ``duetseg experiment`` grid.

    Args:
        grid: the grid (:func:`duetseg.workflows.experiment.load_grid`); its ``out`` lies
            under ``runs_root``.
        runs_root: see :func:`archive_path`.
        archive_root: see :func:`archive_path`.

    Returns:
        The archived copies, in the grid's order.
    """
    return [archive_run(run.run_dir, archive_path(run.run_dir, runs_root, archive_root),
                        grid.split)
            for run in plan_grid(grid) if RunDir(run.run_dir).is_evaluated(grid.split)]
