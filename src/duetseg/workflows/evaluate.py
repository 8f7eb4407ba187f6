"""``duetseg evaluate``: predict a split, restore the original geometry, score every output."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from duetseg.atomic import save_json
from duetseg.data.cache import load_original_label
from duetseg.data.geometry import restore_to_original, write_like_original
from duetseg.data.splits import load_splits
from duetseg.errors import ConfigError
from duetseg.evaluation.metrics import multiclass_metrics
from duetseg.evaluation.summary import format_table, summarize, write_metrics_csv
from duetseg.inference import keep_largest_component
from duetseg.progress import progress_bar
from duetseg.run.layout import RunDir
from duetseg.run.trained import load_trained_run, predict_probabilities

__all__ = ["evaluate_run"]


def evaluate_run(run_dir: Path, split: str = "test", checkpoint: str = "best",
                 device: str = "auto", save_all_outputs: bool = False,
                 progress: bool = True, largest_component: bool | None = None) -> dict:
    """Evaluate a trained run on one split, in the original image geometry.

    Writes ``eval/<split>/metrics.csv``, ``summary.json`` and ``predictions/<case>.nii.gz``
    (the primary output; with ``save_all_outputs`` also ``predictions/<output>/``).
    ``largest_component`` (default: the run's ``inference.largest_component``) keeps only
    the largest connected component of each foreground class of every output's mask.

    Args:
        run_dir: a trained run directory.
        split: the split to evaluate (its cases need reference labels).
        checkpoint: "best" (falls back to "last") or "last".
        device: "auto", "cpu", "cuda", ...
        save_all_outputs: also write every other output's masks.
        progress: show a progress bar and print the summary table.
        largest_component: keep the largest connected component per class (None: the
            run's config).

    Returns:
        The summary (also written to ``summary.json``).

    Raises:
        ConfigError: unknown split or a split without labelled cases.
    """
    paths = RunDir(run_dir)
    run = load_trained_run(paths, checkpoint, device)
    splits = load_splits(paths.splits_file)
    if split not in splits:
        raise ConfigError(f"unknown split {split!r}; {paths.splits_file} has {sorted(splits)}")
    cases = splits[split]
    if not cases:
        raise ConfigError(f"split {split!r} of {run_dir} is empty")
    out = paths.eval(split)
    primary = run.method.primary_output
    classes = list(range(1, run.cache.num_classes))
    if largest_component is None:
        largest_component = run.cfg.inference.largest_component
    rows = []
    for case in progress_bar(cases, desc=f"evaluate {split}", disable=not progress):
        props = run.cache.properties(case)
        if not props.get("label_file"):
            raise ConfigError(f"case {case!r} in split {split!r} has no reference label")
        ref, spacing = load_original_label(Path(props["label_file"]), run.cache.settings, case)
        probs = predict_probabilities(run, run.cache.load_image(case))
        for name, p in probs.items():
            pred = restore_to_original(p, props, is_label=False).argmax(0).astype(np.uint8)
            if largest_component:
                pred = keep_largest_component(pred)
            if name == primary:
                write_like_original(pred, props, out.prediction(case))
            elif save_all_outputs:
                write_like_original(pred, props, out.prediction(case, name))
            for cls, values in multiclass_metrics(pred, ref, spacing, classes).items():
                rows.append({"case": case, "output": name, "class": cls, **values})
    write_metrics_csv(rows, out.metrics_file)
    summary = {
        "run": str(run_dir), "split": split, "checkpoint": run.checkpoint.name,
        "method": run.cfg.method.name, "primary_output": primary,
        "outputs": run.method.describe_outputs(),
        "output_specs": [spec.to_dict() for spec in run.method.outputs()],
        "n_cases": len(cases),
        "largest_component": bool(largest_component),
        "asd_convention": "directed, prediction surface to reference surface (mm)",
        "metrics": summarize(rows),
    }
    save_json(summary, out.summary_file)
    if progress:
        print(format_table(summary["metrics"]))
    return summary
