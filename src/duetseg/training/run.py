"""Run directory set-up: resolved config, splits, and the guard against clobbering a run."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from duetseg.atomic import save_text
from duetseg.config import Config
from duetseg.data.splits import load_splits, make_splits, save_splits
from duetseg.errors import ConfigError

__all__ = ["prepare_run_dir", "load_run_config"]


def load_run_config(run_dir: Path) -> Config:
    """The resolved config saved in ``run_dir/config.yaml``.

    Raises:
        ConfigError: the run dir has no config, or an invalid one (YAML tags that would
            build Python objects are refused by the safe loader).
    """
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ConfigError(f"{run_dir} is not a duetseg run directory (no config.yaml)")
    try:
        return Config.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid run config: {exc}") from exc


# Settings that change how fast a step runs, not what it computes (up to float rounding):
# a run may be resumed with other values, e.g. on another machine or a newer duetseg.
# ``name`` only labels the run in reports.
RESUMABLE_WITH_CHANGES = ("name", "train.num_workers", "train.channels_last", "train.compile")


def _identity(cfg: Config) -> dict:
    """The config as a dict without the keys in ``RESUMABLE_WITH_CHANGES``."""
    data = cfg.model_dump(mode="json")
    for key in RESUMABLE_WITH_CHANGES:
        *sections, leaf = key.split(".")
        node = data
        for section in sections:
            node = node[section]
        node.pop(leaf, None)
    return data


def _differences(old: object, new: object, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix[:-1]}: {old!r} -> {new!r}"]


def prepare_run_dir(cfg: Config, cache, run_dir: Path, resume: bool) -> dict[str, list[str]]:
    """Create or re-open ``run_dir`` and return its splits.

    A new run writes ``config.yaml`` and ``splits.json``. A resumed run must have the same
    config (the number of iterations included: poly decay depends on it), except the
    speed-only settings in ``RESUMABLE_WITH_CHANGES``.

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
        diffs = _differences(_identity(saved), _identity(cfg))
        if diffs:
            raise ConfigError(
                f"cannot resume {run_dir}: the config differs from its config.yaml "
                f"({'; '.join(diffs)}); resume with the saved config, or start a new run"
            )
    for folder in (run_dir, run_dir / "checkpoints"):  # left by a killed atomic write
        for tmp in folder.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)
    splits_path = run_dir / "splits.json"
    if resume and splits_path.exists():
        splits = load_splits(splits_path)
    else:
        splits = make_splits(cache.cases, cache.labelled_cases, cfg.splits)
        save_splits(splits, splits_path)
    save_text(cfg.to_yaml(), run_dir / "config.yaml")
    return splits
