"""Run directory set-up: resolved config, splits, and the guard against clobbering a run."""

from __future__ import annotations

from pathlib import Path

from duetseg.atomic import save_text
from duetseg.config import Config
from duetseg.config.differences import changed_settings
from duetseg.data.cache import Cache
from duetseg.data.splits import load_splits, make_splits, save_splits
from duetseg.errors import ConfigError
from duetseg.methods.registry import resolved_options
from duetseg.run.config import load_run_config
from duetseg.run.layout import RunDir
from duetseg.run.preprocessing import Preprocessing

__all__ = ["RESUMABLE_WITH_CHANGES", "prepare_run_dir"]


# Settings that change how fast a step runs, not what it computes (up to float rounding):
# a run may be resumed with other values, e.g. on another machine or a newer duetseg.
# ``name`` only labels the run in reports.
RESUMABLE_WITH_CHANGES = ("name", "train.num_workers", "train.channels_last", "train.compile")


def with_resolved_options(cfg: Config) -> Config:
    """``cfg`` with its method options spelled out (the method's defaults filled in)."""
    method = cfg.method.model_copy(update={"options": resolved_options(cfg.method)})
    return cfg.model_copy(update={"method": method})


def _identity(cfg: Config) -> dict:
    """The config as a dict, method options resolved, without ``RESUMABLE_WITH_CHANGES``."""
    data = with_resolved_options(cfg).model_dump(mode="json")
    for key in RESUMABLE_WITH_CHANGES:
        *sections, leaf = key.split(".")
        node = data
        for section in sections:
            node = node[section]
        node.pop(leaf, None)
    return data


def prepare_run_dir(cfg: Config, cache: Cache, run_dir: Path,
                    resume: bool) -> dict[str, list[str]]:
    """Create or re-open ``run_dir`` and return its splits.

    A new run writes ``config.yaml`` (method options with their defaults spelled out),
    ``splits.json`` and ``preprocessing.json`` (what prediction needs of the cache). A
    resumed run must have the same config (the number of iterations included: poly decay
    depends on it; options compared with defaults filled in), except the speed-only
    settings in ``RESUMABLE_WITH_CHANGES``.

    Args:
        cfg: the run's config.
        cache: its cache (the cases to split).
        run_dir: the run directory.
        resume: continue the run in ``run_dir``.

    Returns:
        The splits (saved ones on resume, else new ones).

    Raises:
        ConfigError: the folder already holds a run and ``resume`` is False, or the saved
            config differs from ``cfg``.
    """
    paths = RunDir(run_dir)
    if paths.resumable and not resume:
        raise ConfigError(
            f"{paths} already holds a training run: pass --resume to continue it, or "
            f"choose another output folder"
        )
    paths.root.mkdir(parents=True, exist_ok=True)
    if resume and paths.config_file.exists():
        saved = load_run_config(paths)
        diffs = [f"{key}: {old!r} -> {new!r}" for key, (old, new)
                 in changed_settings(_identity(saved), _identity(cfg)).items()]
        if diffs:
            raise ConfigError(
                f"cannot resume {paths}: the config differs from its "
                f"{paths.config_file.name} ({'; '.join(diffs)}); resume with the saved "
                f"config, or start a new run"
            )
    paths.remove_temporaries()
    if resume and paths.splits_file.exists():
        splits = load_splits(paths.splits_file)
    else:
        splits = make_splits(cache.cases, cache.labelled_cases, cfg.splits)
        save_splits(splits, paths.splits_file)
    save_text(with_resolved_options(cfg).to_yaml(), paths.config_file)
    Preprocessing.from_cache(cache).save(paths.preprocessing_file)
    return splits
