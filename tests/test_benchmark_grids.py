"""The experiment grids shipped in ``benchmarks/grids`` plan runs whose configs validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from duetseg.config import load_config
from duetseg.run.config import load_run_config
from duetseg.training.run import with_resolved_options
from duetseg.workflows.experiment import load_grid, plan_grid

GRIDS = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "grids").glob("*.yaml"))


def test_the_grids_are_found():
    assert len(GRIDS) >= 3


@pytest.mark.parametrize("grid_file", GRIDS, ids=[g.stem for g in GRIDS])
def test_every_planned_run_of_a_shipped_grid_has_a_valid_config(grid_file):
    grid = load_grid(grid_file)
    runs = plan_grid(grid)
    assert len({r.run_dir for r in runs}) == len(runs)
    named = {o.split("=", 1)[1] for extra in grid.variants.values() for o in extra
             if o.startswith("method.name=")}
    for run in runs:
        cfg = with_resolved_options(load_config(grid.base, run.overrides))
        assert cfg.method.name in {*grid.methods, *named, "ours"}


ARCHIVE = GRIDS[0].parents[1] / "results"
RUNS = GRIDS[0].parents[2] / "runs"
PROTOCOL_GRIDS = [g for g in GRIDS if g.stem.startswith("cv_")]


@pytest.mark.parametrize("grid_file", PROTOCOL_GRIDS, ids=[g.stem for g in PROTOCOL_GRIDS])
def test_a_protocol_grid_reproduces_its_archived_runs(grid_file):
    """Every run of the grid that is archived is configured as its archived copy: the grid's
    own run folder, or for seed 0 fold 0 of a run archived before the grids existed the run
    of the same name (``ours`` is archived as ``ours_cpssoft``, the default). A configuration
    not yet trained has no record to differ from."""
    grid = load_grid(grid_file)
    archive = ARCHIVE / grid.out.resolve().relative_to(RUNS.resolve())
    compared = 0
    for run in plan_grid(grid):
        cfg = with_resolved_options(load_config(grid.base, run.overrides))
        name = cfg.name or cfg.method.name
        name = {"ours": "ours_cpssoft"}.get(name, name)
        archived = archive / run.run_dir.name
        if not archived.is_dir() and run.name.endswith("_seed0_f0"):
            archived = archive / f"{name}_f0"
        if not archived.is_dir():
            continue
        compared += 1
        old = with_resolved_options(load_run_config(archived))
        assert (cfg.model, cfg.splits, cfg.train) == (old.model, old.splits, old.train), name
        assert cfg.method.name == old.method.name, name
        if cfg.method.consistency_weight:  # at weight 0 the options do not act
            assert cfg.method == old.method, name
    assert compared > 0, f"no archived run of {grid_file.name}"
