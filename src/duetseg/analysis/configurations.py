"""What sets each configuration of the results page apart from the default.

The page names configurations (``ours_augmd``, ``mt_t2``, ...); this module spells out
what each one is, as the settings of its run config that differ from the default's, so a
reader need not open the grid files.
"""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

from duetseg.analysis.records import markdown_table
from duetseg.config import Config
from duetseg.config.differences import ABSENT, changed_settings
from duetseg.methods.registry import get_method_class
from duetseg.reporting.collect import RunRecord

__all__ = ["setting_changes", "configurations_table"]

# what a run computes is set by these sections; the cache (which modalities, how
# normalised) is shown by its folder name
COMPARED_SECTIONS = {"model", "method", "train"}
# settings that differ between runs of one configuration, or change only speed or logging
NOT_COMPARED = ("train.seed", "train.num_workers", "train.device", "train.val_every",
                "train.checkpoint_every", "train.log_every", "train.deterministic",
                "train.amp", "train.channels_last", "train.compile")


def _value(value: Any) -> str:
    """A setting's value as it is written in a ``--set`` override."""
    return value if isinstance(value, str) else json.dumps(value)


def _settings(config: Config) -> dict[str, Any]:
    """The compared sections of ``config``, the options it does not spell at the defaults
    its method had for them."""
    settings = config.model_dump(mode="json", include=COMPARED_SECTIONS)
    defaults = get_method_class(config.method.name).option_defaults()
    settings["method"]["options"] = {**defaults, **settings["method"]["options"]}
    return settings


def setting_changes(config: Config, default: Config) -> list[str]:
    """The settings of ``config`` that differ from ``default``, as ``key=value`` overrides.

    Options of another method than the default's are compared with that method's defaults;
    an option a config does not spell counts at
    its default (:meth:`~duetseg.methods.base.Method.option_defaults`); an entry of a mapping
    setting (``train.contrast_inversion``) that only ``config`` has is a change, one that
    only ``default`` has is not. A different cache
    is named by its folder.

    Args:
        config: the configuration to describe.
        default: the configuration it is compared with.

    Returns:
        ``cache <folder>`` first when the caches differ, then ``key=value`` in key order;
        empty when nothing differs.
    """
    mine, base = (_settings(c) for c in (config, default))
    if config.method.name != default.method.name:
        # another method's options: those it sets away from its own defaults
        base["method"]["options"] = get_method_class(config.method.name).option_defaults()
    changes = [f"{key}={_value(new)}" for key, (old, new) in changed_settings(base, mine).items()
               if key not in NOT_COMPARED and new is not ABSENT]
    folder = PurePath(str(config.cache)).name
    if folder != PurePath(str(default.cache)).name:
        changes.insert(0, f"cache {folder}")
    return changes


def configurations_table(runs: list[RunRecord], default: str) -> str:
    """A Markdown table: each configuration's name and how it differs from ``default``.

    Args:
        runs: the runs on the page (one configuration may have many runs; the first one's
            config stands for it).
        default: the default configuration's name.

    Returns:
        The table, the default first; empty when no run is named ``default``.
    """
    first: dict[str, Config] = {}
    for run in runs:
        first.setdefault(run.name, run.config)
    if default not in first:
        return ""
    rows = [[default, "the default"]]
    rows += [[name, ", ".join(f"`{c}`" for c in setting_changes(first[name], first[default]))
              or "the default's settings"]
             for name in sorted(first) if name != default]
    return markdown_table(["configuration", "differs from the default by"], rows)
