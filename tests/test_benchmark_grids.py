"""The experiment grids shipped in ``benchmarks/grids`` plan runs whose configs validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from duetseg.config import load_config
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
    for run in runs:
        cfg = with_resolved_options(load_config(grid.base, run.overrides))
        assert cfg.method.name in grid.methods or cfg.method.name == "ours"
