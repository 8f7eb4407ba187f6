"""Run directory set-up: resolved config, splits, and the guard against clobbering a run."""

from __future__ import annotations

from pathlib import Path

import yaml

from duetseg.atomic import save_text
from duetseg.config import Config
from duetseg.data.splits import load_splits, make_splits, save_splits
from duetseg.errors import ConfigError

__all__ = ["prepare_run_dir", "load_run_config"]


def load_run_config(run_dir: Path) -> Config:
    """The resolved config saved in ``run_dir/config.yaml``.

    Raises:
        ConfigError: the run dir has no config.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ConfigError(f"{run_dir} is not a duetseg run directory (no config.yaml)")
    return Config.model_validate(yaml.safe_load(path.read_text()))


def prepare_run_dir(cfg: Config, cache, run_dir: Path, resume: bool) -> dict[str, list[str]]:
    """Create or re-open ``run_dir`` and return its splits.

    A new run writes ``config.yaml`` and ``splits.json``. A resumed run must have the same
    config (except the number of iterations may not change either: poly decay depends on it).

    Raises:
        ConfigError: the folder already holds a run and ``resume`` is False, or the saved
            config differs from ``cfg``.
    """
    run_dir = Path(run_dir)
    has_run = (run_dir / "checkpoints" / "last.pt").exists()
    if has_run and not resume:
        raise ConfigError(
            f"{run_dir} already holds a training run: pass --resume to continue it, or "
            f"choose another output folder"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume and (run_dir / "config.yaml").exists():
        saved = load_run_config(run_dir)
        if saved.model_dump(mode="json") != cfg.model_dump(mode="json"):
            raise ConfigError(
                f"cannot resume {run_dir}: the config differs from its config.yaml "
                f"(resume with the saved config, or start a new run)"
            )
    splits_path = run_dir / "splits.json"
    if resume and splits_path.exists():
        splits = load_splits(splits_path)
    else:
        splits = make_splits(cache.cases, cache.labelled_cases, cfg.splits)
        save_splits(splits, splits_path)
    save_text(cfg.to_yaml(), run_dir / "config.yaml")
    return splits
