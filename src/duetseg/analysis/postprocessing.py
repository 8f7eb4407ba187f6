"""Results-page question: does keeping the largest connected component help?

``inference.largest_component`` (``--largest-component``) removes every foreground voxel
outside the largest 26-connected component. Whether that helps depends on the target and
the network: it removes remote false positives, and loses a second tumour or the larger
part of a split prediction. This module scores the saved predictions of evaluated runs
(``eval/<split>/predictions``, the primary output in the original geometry) as predicted
and with the filter, against the same references as ``duetseg evaluate``, and tabulates
the change per run (the independent unit, see docs/evaluation.md).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from duetseg.analysis.readme_table import MIN_RUNS_FOR_CI
from duetseg.analysis.records import markdown_table
from duetseg.data.cache import load_original_label, open_cache
from duetseg.data.preprocess import BRATS_REGIONS
from duetseg.evaluation.metrics import dice
from duetseg.inference.postprocess import keep_largest_component
from duetseg.reporting.bootstrap import N_RESAMPLES, bootstrap_mean_ci
from duetseg.run.config import load_run_config
from duetseg.run.layout import RunDir

__all__ = ["ComponentEffect", "component_effect", "component_effect_table", "target_name"]



@dataclass(frozen=True)
class ComponentEffect:
    """One run's foreground Dice (%) per test case, as predicted and with the filter.

    Attributes:
        name: the configuration (``cfg.name``, else the method).
        target: the cache's label mapping (``whole_tumour``, ``tumour_core``...).
        labeled: ``splits.labeled`` of the run.
        cases: the cases scored.
        before: Dice as predicted, per case.
        after: Dice after :func:`~duetseg.inference.keep_largest_component`, per case.
    """

    name: str
    target: str
    labeled: str
    cases: tuple[str, ...]
    before: tuple[float, ...]
    after: tuple[float, ...]

    @property
    def change(self) -> float:
        """The run's mean Dice change (points)."""
        return statistics.fmean(self.after) - statistics.fmean(self.before)


def component_effect(run_dir: Path, split: str = "test") -> ComponentEffect | None:
    """Score a run's saved predictions with and without the largest-component filter.

    Args:
        run_dir: an evaluated run directory whose cache is present.
        split: the evaluated split.

    Returns:
        The effect, or None when the run has no saved predictions of ``split``.

    Raises:
        ConfigError: no run config or no cache.
        InputError: an unreadable reference.
    """
    paths = RunDir(run_dir)
    files = sorted(paths.eval(split).predictions_dir.glob("*.nii.gz"))
    if not files:
        return None
    cfg = load_run_config(paths)
    cache = open_cache(cfg.cache, cfg.modalities)
    cases, before, after = [], [], []
    for file in files:
        case = file.name.removesuffix(".nii.gz")
        ref, _ = load_original_label(Path(cache.properties(case)["label_file"]),
                                     cache.settings, case)
        pred = np.asanyarray(nib.load(file).dataobj).astype(np.uint8)
        cases.append(case)
        before.append(dice(pred > 0, ref > 0))
        after.append(dice(keep_largest_component(pred) > 0, ref > 0))
    return ComponentEffect(cfg.name or cfg.method.name, target_name(cache.settings.label_mapping),
                           str(cfg.splits.labeled), tuple(cases), tuple(before), tuple(after))


def target_name(mapping: str | dict[int, int]) -> str:
    """The name of a label mapping: its own, or the BraTS region a value mapping spells out.

    Args:
        mapping: ``PrepareConfig.label_mapping``.

    Returns:
        e.g. ``"whole_tumour"``; ``"tumour_core"`` for ``{1: 1, 2: 0, 4: 1}`` (a region's
        mapping on the values it names); ``"custom"`` for any other mapping.
    """
    if isinstance(mapping, str):
        return mapping
    given = {int(k): int(v) for k, v in mapping.items() if int(k) != 0}
    for name, region in BRATS_REGIONS.items():
        if given and all(region.get(k) == v for k, v in given.items()):
            return name
    return "custom"


def _row(target: str, name: str, labeled: str, runs: list[ComponentEffect],
         n_resamples: int) -> list[str]:
    changes = np.array([r.change for r in runs])
    ci = ""
    if len(runs) >= MIN_RUNS_FOR_CI:
        low, high = bootstrap_mean_ci(changes, n_resamples=n_resamples)
        ci = f" [{low:+.1f}, {high:+.1f}]"
    return [target.replace("_", " "), name, labeled, str(len(runs)),
            f"{statistics.fmean(statistics.fmean(r.before) for r in runs):.1f}",
            f"{statistics.fmean(statistics.fmean(r.after) for r in runs):.1f}",
            f"{changes.mean():+.1f}{ci}",
            f"{int((changes > 0).sum())} / {int((changes < 0).sum())}"]


def component_effect_table(effects: Iterable[ComponentEffect],
                           n_resamples: int = N_RESAMPLES) -> str:
    """The Markdown table: per target, configuration and labelled count, then a row over
    all the target's runs.

    Args:
        effects: one per run.
        n_resamples: bootstrap resamples of the run-level interval.

    Returns:
        The table (no trailing newline).
    """
    groups: dict[tuple[str, str, str], list[ComponentEffect]] = defaultdict(list)
    for effect in effects:
        groups[(effect.target, effect.name, effect.labeled)].append(effect)
    rows = []
    for target in sorted({key[0] for key in groups}):
        keys = sorted(k for k in groups if k[0] == target)
        rows += [_row(*key, groups[key], n_resamples) for key in keys]
        every = [r for k in keys for r in groups[k]]
        rows.append(_row(target, f"all {target.replace('_', ' ')} runs", "all", every,
                         n_resamples))
    columns = ["target", "configuration", "labelled", "runs", "Dice as predicted (%)",
               "Dice, largest component (%)", "change per run (95 % CI)",
               "runs better / worse"]
    return markdown_table(columns, rows)
