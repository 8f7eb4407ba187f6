"""``duetseg experiment GRID.yaml``: methods x labelled amounts x seeds, resumable.

A grid file::

    cache: cache/brats_2mm          # from `duetseg prepare`
    base: cpu_small                 # preset or YAML every run starts from
    out: runs/table1                # runs go to <out>/<run name>/
    methods: [ours, mean_teacher]   # registered method names
    labeled: ["5%", "10%"]          # or counts
    seeds: [0, 1]
    overrides: ["train.max_iterations=1500"]
    variants:                       # optional extra named configs (e.g. the ablation)
      baseline: ["model.fusion=none", "model.mae=false", "method.options.mcml=false"]
      w0: ["method.consistency_weight=0"]   # the labelled-only control of ours
    folds: 5                        # optional: K-fold cross-validation, one run per fold
    checkpoint: last                # which checkpoint is evaluated (best | last)
    split: test
    parallel: 1                     # optional: trainings at once (``--parallel`` wins)

A variant runs ``ours`` with its overrides and is reported as ``ours-<name>`` (the run's
``name``); a variant whose overrides set ``method.name=M`` runs method ``M`` instead and is
reported as ``M-<name>`` (e.g. ``strong: ["method.name=supervised", ...]`` is
``supervised-strong``). With ``folds: K`` every run exists once per fold (``splits.folds=K``,
``splits.fold=k``, run name suffix ``_f<k>``): the K runs of one configuration test every
labelled case once, and ``duetseg report`` pools them.

Finished runs (their ``eval/<split>/summary.json`` exists) are skipped, an interrupted run
resumes from ``last.pt``, so re-running the same command finishes the grid.

With ``parallel: N`` (or ``--parallel N``) > 1 up to N runs train at once, each in its own
process (see :mod:`duetseg.workflows.parallel`); N = 1 runs them here, one after the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, model_validator

from duetseg.config import StrictModel, load_config
from duetseg.errors import ConfigError
from duetseg.run.layout import RunDir
from duetseg.training import train
from duetseg.training.distributed import barrier, is_main
from duetseg.workflows.evaluate import evaluate_run

__all__ = ["GridConfig", "GridRun", "find_run", "load_grid", "plan_grid", "run_grid", "run_one"]


class GridConfig(StrictModel):
    """Schema of a grid file (unknown keys are errors)."""

    cache: Path
    base: str = "cpu_small"
    out: Path = Path("runs/experiment")
    methods: list[str] = Field(default_factory=lambda: ["ours"])
    labeled: list[str | int] = Field(default_factory=lambda: ["10%"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    overrides: list[str] = Field(default_factory=list)
    variants: dict[str, list[str]] = Field(default_factory=dict)
    folds: int | None = Field(default=None, ge=2)
    checkpoint: Literal["best", "last"] = "best"
    split: str = "test"
    parallel: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _something_to_run(self):
        if not self.methods and not self.variants:
            raise ValueError("the grid names no methods and no variants")
        return self


class GridRun(StrictModel):
    """One planned run."""

    name: str
    run_dir: Path
    overrides: list[str]


def load_grid(path: Path) -> GridConfig:
    """Read and validate a grid file; relative paths are relative to the file's folder.

    Raises:
        ConfigError: unreadable file or invalid content.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
        grid = GridConfig.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"grid file {path}: {exc}") from exc
    base_dir = path.parent
    if not grid.cache.is_absolute():
        grid.cache = base_dir / grid.cache
    if not grid.out.is_absolute():
        grid.out = base_dir / grid.out
    return grid


def _slug(value: str | int) -> str:
    return str(value).replace("%", "pct").replace("/", "_")


def _variant_method(overrides: list[str]) -> str:
    """The method a variant's overrides name (the last ``method.name=``), else ``ours``."""
    named = [o.split("=", 1)[1].strip() for o in overrides if o.startswith("method.name=")]
    return named[-1] if named else "ours"


def plan_grid(grid: GridConfig) -> list[GridRun]:
    """Every run of the grid, in execution order (methods, then variants, per label/seed)."""
    configs = [(m, m, []) for m in grid.methods]
    for name, extra in grid.variants.items():
        method = _variant_method(extra)
        configs.append((f"{method}-{name}", method, [f"name={method}-{name}", *extra]))
    folds: list[int | None] = list(range(grid.folds)) if grid.folds else [None]
    runs = []
    for labeled in grid.labeled:
        for seed in grid.seeds:
            for fold in folds:
                cv = [] if fold is None else [f"splits.folds={grid.folds}",
                                              f"splits.fold={fold}"]
                suffix = "" if fold is None else f"_f{fold}"
                for name, method, extra in configs:
                    run_name = f"{name}_lab{_slug(labeled)}_seed{seed}{suffix}"
                    overrides = [f"cache={grid.cache}", f"method.name={method}",
                                 f"splits.labeled={labeled}", f"splits.seed={seed}",
                                 f"train.seed={seed}", *cv, *grid.overrides, *extra]
                    runs.append(GridRun(name=run_name, run_dir=grid.out / run_name,
                                        overrides=overrides))
    return runs


def find_run(grid: GridConfig, name: str) -> GridRun:
    """The planned run called ``name``.

    Raises:
        ConfigError: the grid plans no such run.
    """
    for run in plan_grid(grid):
        if run.name == name:
            return run
    raise ConfigError(f"the grid plans no run named {name!r}")


def run_one(grid: GridConfig, run: GridRun, progress: bool = True,
            extra_overrides: list[str] | None = None) -> None:
    """Train (or resume) and evaluate one planned run.

    Args:
        grid: the grid the run belongs to.
        run: the run (:func:`plan_grid`).
        progress: show progress bars.
        extra_overrides: applied after the run's own overrides.
    """
    paths = RunDir(run.run_dir)
    cfg = load_config(grid.base, [*run.overrides, *(extra_overrides or [])])
    train(cfg, run.run_dir, resume=paths.resumable, progress=progress)
    if is_main():  # under torchrun only rank 0 evaluates; the others wait for it
        evaluate_run(run.run_dir, grid.split, checkpoint=grid.checkpoint, progress=progress)
    barrier()


def run_grid(grid: GridConfig, progress: bool = True) -> list[Path]:
    """Train and evaluate every run of the grid that is not finished yet.

    Args:
        grid: the grid (:func:`load_grid`).
        progress: print one line per run and show progress bars.

    Returns:
        The run directories (all of them, finished before or now).
    """
    runs = plan_grid(grid)
    for index, run in enumerate(runs, 1):
        paths = RunDir(run.run_dir)
        if paths.is_evaluated(grid.split):
            if progress:
                print(f"[{index}/{len(runs)}] {run.name}: done, skipped")
            continue
        if progress:
            print(f"[{index}/{len(runs)}] {run.name}")
        run_one(grid, run, progress=progress)
    return [r.run_dir for r in runs]
