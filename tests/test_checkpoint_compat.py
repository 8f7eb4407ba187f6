"""Checkpoints of older duetseg versions: model keys added or dropped since still match."""

from __future__ import annotations

from pathlib import Path

import pytest

from duetseg.config import ModelConfig
from duetseg.errors import ConfigError
from duetseg.run.checkpoint import check_compatible

META = {"modalities": ["t1ce", "t2"], "num_classes": 2, "method": "ours",
        "model": ModelConfig(base_width=8).model_dump(mode="json")}


def test_older_model_settings_are_read_with_todays_defaults():
    old = dict(META["model"])
    old.pop("branch_input")  # added later: older checkpoints were made with its default
    old["backbone"] = "vnet"  # dropped later
    check_compatible({"meta": {**META, "model": old}}, META, Path("old.pt"))


def test_a_different_model_setting_is_still_refused():
    other = {**META["model"], "branch_input": "all"}
    with pytest.raises(ConfigError, match="branch_input|model"):
        check_compatible({"meta": {**META, "model": other}}, META, Path("x.pt"))
    bad = {**META["model"], "backbone": "unet"}
    with pytest.raises(ConfigError, match="another configuration"):
        check_compatible({"meta": {**META, "model": bad}}, META, Path("y.pt"))
