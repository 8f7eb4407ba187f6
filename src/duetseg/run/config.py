"""A run's saved configuration (``config.yaml``), read without importing torch."""

from __future__ import annotations

import os

import yaml

from duetseg.config import Config
from duetseg.errors import ConfigError
from duetseg.run.layout import RunDir

__all__ = ["load_run_config"]


def load_run_config(run_dir: str | os.PathLike) -> Config:
    """The resolved config saved in ``run_dir/config.yaml``.

    Args:
        run_dir: a run directory (a path or a :class:`~duetseg.run.layout.RunDir`).

    Returns:
        The validated config.

    Raises:
        ConfigError: the run dir has no config, or an invalid one (YAML tags that would
            build Python objects are refused by the safe loader).
    """
    paths = RunDir(run_dir)
    path = paths.config_file
    if not path.is_file():
        raise ConfigError(f"{paths} is not a duetseg run directory (no {path.name})")
    try:
        return Config.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"{path}: invalid run config: {exc}") from exc
