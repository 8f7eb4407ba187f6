"""Experiment grids: planning, validation, skipping finished runs."""

import pytest

from duetseg.config import load_config
from duetseg.errors import ConfigError
from duetseg.workflows.experiment import load_grid, plan_grid, run_grid


def test_plan_covers_methods_labels_seeds_and_variants(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(
        "cache: cache\nmethods: [ours, supervised]\nlabeled: ['5%', 3]\nseeds: [0, 1]\n"
        "variants:\n  baseline: ['model.fusion=none']\n"
    )
    grid = load_grid(grid_file)
    assert grid.cache == tmp_path / "cache"
    runs = plan_grid(grid)
    assert len(runs) == 2 * 2 * 3
    assert len({r.run_dir for r in runs}) == len(runs)
    base = [r for r in runs if r.name.startswith("ours-baseline_lab3_seed1")]
    assert len(base) == 1 and "model.fusion=none" in base[0].overrides
    assert "method.name=ours" in base[0].overrides


def test_unknown_grid_key_is_an_error(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("cache: c\nmethod: [ours]\n")
    with pytest.raises(ConfigError, match="method"):
        load_grid(grid_file)


def test_finished_runs_are_skipped(tmp_path, capsys):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("cache: cache\nmethods: [ours]\nlabeled: [2]\nseeds: [0]\n")
    grid = load_grid(grid_file)
    (run,) = plan_grid(grid)
    summary = run.run_dir / "eval" / "test" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text("{}")
    assert run_grid(grid) == [run.run_dir]
    assert "skipped" in capsys.readouterr().out


def test_plan_with_folds_names_variants_and_covers_every_fold(tmp_path):
    from duetseg.config import load_config

    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(
        "cache: cache\nmethods: [ours]\nlabeled: [2]\nseeds: [0]\nfolds: 3\n"
        "checkpoint: last\nvariants:\n  w0: ['method.consistency_weight=0']\n"
    )
    grid = load_grid(grid_file)
    assert grid.checkpoint == "last"
    runs = plan_grid(grid)
    assert len(runs) == 3 * 2
    assert {r.name for r in runs} >= {"ours_lab2_seed0_f0", "ours-w0_lab2_seed0_f2"}
    w0 = next(r for r in runs if r.name == "ours-w0_lab2_seed0_f1")
    cfg = load_config("cpu_small", w0.overrides)
    assert (cfg.name, cfg.splits.folds, cfg.splits.fold) == ("ours-w0", 3, 1)
    assert cfg.method.consistency_weight == 0
    plain = load_config("cpu_small", next(r for r in runs if r.name.startswith("ours_")).overrides)
    assert plain.name is None


def test_a_variant_may_name_its_method(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("cache: cache\nmethods: []\nlabeled: [2]\nvariants:\n"
                         "  strong: [method.name=supervised, method.options.network=vnet]\n"
                         "  w0: [method.consistency_weight=0]\n")
    runs = plan_grid(load_grid(grid_file))
    assert [r.name for r in runs] == ["supervised-strong_lab2_seed0", "ours-w0_lab2_seed0"]
    strong = load_config("cpu_small", runs[0].overrides)
    assert (strong.method.name, strong.name) == ("supervised", "supervised-strong")
    assert load_config("cpu_small", runs[1].overrides).method.name == "ours"
    (tmp_path / "empty.yaml").write_text("cache: cache\nmethods: []\n")
    with pytest.raises(ConfigError, match="no methods and no variants"):
        load_grid(tmp_path / "empty.yaml")
