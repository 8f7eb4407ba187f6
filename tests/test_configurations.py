"""What sets a configuration apart from the default: ``changed_settings`` and the page's
configuration table."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from duetseg.analysis.configurations import configurations_table, setting_changes
from duetseg.config import load_config
from duetseg.config.differences import ABSENT, changed_settings
from duetseg.methods.ours import Ours


def _cfg(*overrides: str):
    return load_config("cpu_small", ["cache=/data/brats_zscore", *overrides])


def test_changed_settings_gives_dotted_keys_and_marks_absent_ones() -> None:
    old = {"train": {"lr": 0.01, "seed": 0}, "model": {"norm": "batch"}}
    new = {"train": {"lr": 0.02, "seed": 0}, "model": {"norm": "batch", "branches": 2}}
    assert changed_settings(old, new) == {"model.branches": (ABSENT, 2),
                                          "train.lr": (0.01, 0.02)}
    assert changed_settings(old, old) == {}
    assert repr(ABSENT) == "<absent>"


def test_a_configuration_is_described_by_its_overrides() -> None:
    default = _cfg()
    assert setting_changes(default, default) == []
    assert setting_changes(_cfg("train.seed=3", "train.num_workers=0"), default) == []
    aug = _cfg("train.spatial_augment=0.3", "model.branch_input=all")
    assert setting_changes(aug, default) == ["model.branch_input=all",
                                             "train.spatial_augment=0.3"]
    inverted = _cfg("train.contrast_inversion.t1ce=0.5")  # an entry of a mapping setting
    assert setting_changes(inverted, default) == ["train.contrast_inversion.t1ce=0.5"]
    assert setting_changes(default, inverted) == []
    t2 = _cfg("cache=/data/brats_t2", "method.name=mean_teacher")
    assert setting_changes(t2, default) == ["cache brats_t2", "method.name=mean_teacher"]
    # another method: its options are compared with its own defaults
    vnet = _cfg("method.name=supervised", "method.options.network=vnet")
    assert setting_changes(vnet, default) == ["method.name=supervised",
                                              "method.options.network=vnet"]


def test_options_a_config_does_not_spell_count_at_their_defaults() -> None:
    default = _cfg()
    old_run = default.model_copy(deep=True)
    old_run.method.options = {}  # written before the options existed
    assert setting_changes(old_run, default) == []
    removed = default.model_copy(deep=True)
    removed.method.options = {"teacher": "ema"}  # an option since removed, away from off
    assert setting_changes(removed, old_run) == ["method.options.teacher=ema"]
    assert Ours.option_defaults()["teacher"] == "branches"
    assert Ours.option_defaults()["consistency"] == "cross_pseudo"


def test_the_table_lists_the_default_first_and_each_other_configuration() -> None:
    def run(name, cfg):
        return SimpleNamespace(name=name, config=cfg, run_dir=Path(name))

    runs = [run("mt", _cfg("method.name=mean_teacher")), run("ours (default)", _cfg()),
            run("ours (default)", _cfg("train.seed=1")), run("same", _cfg())]
    lines = configurations_table(runs, "ours (default)").splitlines()
    assert lines[2] == "| ours (default) | the default |"
    assert lines[3] == "| mt | `method.name=mean_teacher` |"
    assert lines[4] == "| same | the default's settings |"
    assert len(lines) == 5
    assert configurations_table(runs, "absent") == ""
