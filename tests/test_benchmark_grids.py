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
    named = {o.split("=", 1)[1] for extra in grid.variants.values() for o in extra
             if o.startswith("method.name=")}
    for run in runs:
        cfg = with_resolved_options(load_config(grid.base, run.overrides))
        assert cfg.method.name in {*grid.methods, *named, "ours"}


def test_every_cross_validation_variant_has_a_valid_config(monkeypatch):
    monkeypatch.syspath_prepend(str(GRIDS[0].parents[1]))
    from cv_protocol import VARIANTS

    assert {"ours_cps", "ours_w0", "abl_base", "abl_mmf", "abl_mmf_mcml"} <= set(VARIANTS)
    for name, (method, overrides, _) in VARIANTS.items():
        cfg = with_resolved_options(load_config("cpu_small", [f"method.name={method}",
                                                              *overrides]))
        assert cfg.method.name == method, name
    ablation = {v: load_config("cpu_small", VARIANTS[v][1]).model
                for v in ("abl_base", "abl_mmf")}
    assert ablation["abl_base"].fusion == "none" and not ablation["abl_mmf"].mae

    def options(name):
        return with_resolved_options(load_config("cpu_small", VARIANTS[name][1])).method.options

    default = with_resolved_options(load_config("cpu_small", ["method.name=ours"])).method.options
    assert options("ours_cpssoft") == default  # the library default is the measured variant
    assert options("ours_cps")["pseudo_prior"] == "off"  # the former default, pinned


@pytest.mark.parametrize("weights_here,need_weights,trains", [
    (False, False, False), (False, True, True), (True, True, False)])
def test_a_finished_run_is_trained_again_only_when_its_weights_are_needed(
        monkeypatch, tmp_path, weights_here, need_weights, trains):
    monkeypatch.syspath_prepend(str(GRIDS[0].parents[1]))
    import cv_protocol

    run_dir = tmp_path / "ours_cpssoft_f0"
    if weights_here:
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    calls = []
    monkeypatch.setattr(cv_protocol, "finished_run", lambda d: tmp_path / "archived")
    archived = tmp_path / "archived" / "eval" / "test"
    archived.mkdir(parents=True)
    (archived / "summary.json").write_text("{}")
    monkeypatch.setattr(cv_protocol, "primary_dice", lambda summary: 50.0)
    monkeypatch.setattr(cv_protocol, "train", lambda cfg, d, resume: calls.append(d))
    summary = {"primary_output": "ensemble",
               "metrics": {"ensemble": {"1": {"dice": {"mean": 51.0}}}}}
    monkeypatch.setattr(cv_protocol, "evaluate_run", lambda *a, **k: summary)
    monkeypatch.setattr(cv_protocol, "archive_run", lambda d: calls.append("archived"))
    cv_protocol.train_fold_run("ours_cpssoft", run_dir, tmp_path, 3, 0, 2, 10, [],
                               need_weights=need_weights)
    assert calls == ([run_dir, "archived"] if trains else [])
