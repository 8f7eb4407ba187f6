"""Grids, reports and listings: ``experiment``, ``report``, ``methods``, ``presets`` and
``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from duetseg.cli.app import AGAIN, app
from duetseg.cli_support import interruptible

__all__ = ["demo", "experiment", "experiment_run", "methods", "presets", "report"]


@app.command()
@interruptible(AGAIN.format(what="runs") + "; unfinished runs resume from their last "
               "checkpoint")
def experiment(
    grid: Annotated[Path, typer.Argument(help="grid YAML (methods x labelled x seeds)")],
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
    parallel: Annotated[int | None, typer.Option(
        min=1, help="trainings at once, each its own process with cores/N threads and a "
                    "log <run>/experiment.log (default: the grid's 'parallel', else 1)")] = None,
) -> None:
    """Run a grid of trainings + evaluations; finished runs are skipped, others resume."""
    from duetseg.workflows.experiment import load_grid, run_grid
    from duetseg.workflows.parallel import check_parallel, resolve_parallel, run_grid_parallel

    loaded = load_grid(grid)
    n = resolve_parallel(parallel, loaded)
    check_parallel(n)
    if n == 1:
        run_dirs = run_grid(loaded, progress=not quiet)
    else:
        run_dirs = run_grid_parallel(grid, n, progress=not quiet)
    typer.echo(f"{len(run_dirs)} runs complete under {run_dirs[0].parent}")


@app.command("experiment-run", hidden=True)
@interruptible("the parent `duetseg experiment` resumes this run next time")
def experiment_run(
    grid: Annotated[Path, typer.Argument(help="grid YAML")],
    name: Annotated[str, typer.Argument(help="run name (as planned by the grid)")],
    threads: Annotated[int, typer.Option(min=1, help="torch intra-op threads")] = 1,
    parallel: Annotated[int, typer.Option(min=1, help="runs the parent keeps alive")] = 1,
    quiet: Annotated[bool, typer.Option(help="no progress lines")] = False,
) -> None:
    """Train and evaluate one run of a grid (a child of ``experiment --parallel``)."""
    from duetseg.workflows.parallel import run_child

    run_child(grid, name, threads=threads, parallel=parallel, progress=not quiet)
    typer.echo(f"{name}: complete")


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories (evaluated)")],
    out: Annotated[Path, typer.Option(help="report folder")],
    split: Annotated[str, typer.Option(help="evaluated split")] = "test",
    baseline: Annotated[str | None, typer.Option(
        help="configuration name for the gain table (every other one is compared to it; "
             "default: supervised when a configuration has that name)")] = None,
    reference: Annotated[str, typer.Option(
        help="configuration name of Table 1's p column (Wilcoxon against it)")] = "ours",
) -> None:
    """Table 1 / Table 2 style tables, Wilcoxon tests, gain table, curves and an HTML page.

    Runs are grouped by their config's 'name' (else the method name): the seeds and the
    cross-validation folds of one configuration make one row. A gain table is also printed.
    """
    from duetseg.reporting.report import write_report

    result = write_report(run_dirs, out, split=split, baseline=baseline, reference=reference)
    if result.gain is not None:
        typer.echo(result.gain.to_markdown())
    typer.echo(f"report: {result.index}")


@app.command()
def methods() -> None:
    """List the registered training methods."""
    from duetseg.methods import available_methods

    for name, description in available_methods().items():
        typer.echo(f"{name:<14} {description}")


@app.command()
def presets() -> None:
    """List the built-in configuration presets."""
    from duetseg.config import PRESET_DIR, list_presets

    for name in list_presets():
        first = (PRESET_DIR / f"{name}.yaml").read_text().splitlines()[0].lstrip("# ")
        typer.echo(f"{name:<12} {first}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/demo"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override")] = None,
) -> None:
    """Whole pipeline on a built-in synthetic two-modality dataset (a few minutes on a CPU)."""
    from duetseg.workflows.demo import run_demo

    run_demo(out, overrides=list(set_ or []))
