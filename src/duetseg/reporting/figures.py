"""Report figures: training curves and a Fig. 2-like qualitative comparison grid."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from duetseg.atomic import atomic_path  # noqa: E402
from duetseg.config import PrepareConfig  # noqa: E402
from duetseg.data.cache import load_original_label  # noqa: E402
from duetseg.reporting.collect import RunRecord, read_log_csv  # noqa: E402
from duetseg.reporting.tables import order_methods  # noqa: E402

__all__ = ["plot_curves", "qualitative_runs", "common_cases", "plot_qualitative"]


def _save(fig: plt.Figure, path: Path, dpi: int = 100) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return Path(path)


def plot_curves(runs: list[RunRecord], path: Path) -> Path:
    """Plot training loss and validation Dice against iteration, one line per run.

    The validation Dice is the ``val_dice/<primary output>`` column of ``log.csv`` (or the
    first ``val_dice/*`` column). Runs without a log are skipped; with none at all the figure
    says so.

    Args:
        runs: the runs.
        path: output PNG (written atomically).

    Returns:
        ``path``.
    """
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 4.2 + 0.18 * len(runs)))
    plotted = 0
    cmap = plt.get_cmap("tab20")
    for i, run in enumerate(runs):
        style = {"color": cmap(i % 20), "linestyle": ("-", "--", ":")[(i // 20) % 3],
                 "label": run.label, "linewidth": 1}
        log = read_log_csv(run.paths.log_file)
        if "iteration" not in log:
            continue
        it = log["iteration"]
        if "loss" in log:
            ok = np.isfinite(log["loss"])
            ax_loss.plot(it[ok], log["loss"][ok], **style)
        dice_cols = [k for k in log if k.startswith("val_dice/")]
        col = f"val_dice/{run.primary_output}"
        col = col if col in log else (dice_cols[0] if dice_cols else None)
        if col is not None:
            ok = np.isfinite(log[col])
            ax_dice.plot(it[ok], log[col][ok], marker="o", markersize=3, **style)
        plotted += 1
    ax_loss.set(title="training loss", xlabel="iteration", ylabel="loss")
    ax_dice.set(title="validation Dice (primary output)", xlabel="iteration", ylabel="Dice")
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
    handles, labels = ax_loss.get_legend_handles_labels()
    if not handles:
        handles, labels = ax_dice.get_legend_handles_labels()
    rows = math.ceil(len(handles) / 3)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    if not plotted:
        fig.text(0.5, 0.5, "no log.csv found in the runs", ha="center", va="center")
    fig.tight_layout(rect=(0, min(0.6, 0.05 + 0.18 * rows / fig.get_figheight()), 1, 1))
    return _save(fig, path)


def qualitative_runs(runs: list[RunRecord],
                     reference: str | None = None) -> list[RunRecord]:
    """One run per configuration (:attr:`RunRecord.name`) for the qualitative figure.

    Uses the labelled count covered by the most configurations (ties: the smallest count)
    and, per configuration, the run with the lowest seed on the split (fold) shared by the
    most configurations, else its lowest-seed run; configurations in table order
    (``reference`` last; None = the proposed method).
    """
    if not runs:
        return []
    counts = sorted({r.labeled for r in runs})
    best = max(counts, key=lambda c: (len({r.name for r in runs if r.labeled == c}), -c))
    members = [r for r in runs if r.labeled == best]
    keys = list(dict.fromkeys(r.split_key for r in sorted(members, key=lambda r: r.seed)))
    split = max(keys, key=lambda k: len({r.name for r in members if r.split_key == k}))
    chosen: dict[str, RunRecord] = {}
    for run in sorted(members, key=lambda r: (r.split_key != split, r.seed)):
        chosen.setdefault(run.name, run)
    return [chosen[m] for m in order_methods(list(chosen), reference)]


def _properties(run: RunRecord, case: str) -> dict | None:
    cache = run.config.cache
    path = Path(cache) / f"{case}.json" if cache is not None else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())


def common_cases(runs: list[RunRecord], max_cases: int = 3) -> list[str]:
    """Up to ``max_cases`` evaluated cases (sorted) with a prediction in every run and a
    reference label and source image in the first run's cache."""
    if not runs:
        return []
    sets = [{p.name[: -len(".nii.gz")] for p in r.eval_dir.predictions_dir.glob("*.nii.gz")}
            for r in runs]
    out = []
    for case in sorted(set.intersection(*sets)):
        props = _properties(runs[0], case)
        if props and props.get("label_file") and props.get("source_files"):
            out.append(case)
        if len(out) == max_cases:
            break
    return out


def _reference(run: RunRecord, props: dict, case: str) -> np.ndarray:
    """The reference label as stored, mapped to classes when the cache settings are known."""
    path = Path(props["label_file"])
    meta = Path(run.config.cache) / "dataset.json"
    if meta.is_file():
        settings = PrepareConfig.model_validate(json.loads(meta.read_text())["settings"])
        return load_original_label(path, settings, case)[0]
    return np.asanyarray(nib.load(str(path)).dataobj)


def _best_slice(mask: np.ndarray) -> int:
    area = mask.reshape(-1, mask.shape[-1]).sum(0)
    return int(area.argmax()) if area.any() else mask.shape[-1] // 2


def _dice_of(run: RunRecord, case: str) -> float:
    return run.case_values("dice").get(case, math.nan)


def plot_qualitative(runs: list[RunRecord], path: Path, cases: list[str] | None = None,
                     max_cases: int = 3) -> Path | None:
    """Fig. 2-like grid: per case the first modality, the reference and each run's prediction.

    Each case is shown on the axial slice (last array axis, original geometry) with the
    largest reference area. Predictions are filled in red with the reference contour in
    green; panel titles give the case Dice of the primary output.

    Args:
        runs: one run per column (see :func:`qualitative_runs`).
        path: output PNG (written atomically).
        cases: cases to show; None picks them with :func:`common_cases`.
        max_cases: at most this many rows when picking.

    Returns:
        ``path``, or None when no case has predictions in every run and a reference.
    """
    cases = common_cases(runs, max_cases) if cases is None else cases
    if not runs or not cases:
        return None
    ncol = len(runs) + 2
    fig, axes = plt.subplots(len(cases), ncol, figsize=(2.6 * ncol, 2.7 * len(cases)),
                             squeeze=False)
    for i, case in enumerate(cases):
        props = _properties(runs[0], case)
        modality, img_path = next(iter(props["source_files"].items()))
        image = np.asarray(nib.load(img_path).get_fdata(dtype=np.float32))
        ref = _reference(runs[0], props, case)
        z = _best_slice(ref > 0)
        base = image[:, :, z].T
        ref_sl = ref[:, :, z].T > 0
        panels = [(f"{case}\n{modality}", None), ("ground truth", ref_sl)]
        for run in runs:
            pred = np.asanyarray(nib.load(str(run.eval_dir.prediction(case))).dataobj)
            panels.append((f"{run.name}\nDice {_dice_of(run, case):.1f}", pred[:, :, z].T > 0))
        for j, (title, mask) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(base, cmap="gray", origin="lower")
            if mask is not None and j == 1:
                ax.imshow(np.ma.masked_where(~mask, mask), cmap="summer", alpha=0.6,
                          origin="lower")
            elif mask is not None:
                ax.imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.55,
                          origin="lower")
                if ref_sl.any():
                    ax.contour(ref_sl, levels=[0.5], colors="lime", linewidths=0.8)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"{runs[0].labeled_percent:.3g}% labelled — red: prediction, "
                 "green: reference", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
