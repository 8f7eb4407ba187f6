"""How large are the pseudo-labels, against the truth? (issue 10, the volume lead)

For trained runs of the cross-validated protocol, random crops of the training size are
drawn (uniformly placed, seeded) from the run's unlabelled training cases (where pseudo-
labels are made) and from its test cases; each crop goes through the network on its own,
as in training (eval mode: no dropout). Per output, summed over all crops:

- ``argmax``: voxels the plain argmax labels tumour (``pseudo_prior: off``);
- ``soft``: the expected tumour volume, ``sum p`` (the size of a ``pseudo_prior: soft``
  pseudo-label), and ``tail``: the part of it from voxels with ``p < 0.5``;
- each as a ratio to the true tumour voxels of the same crops (every case is labelled
  in the benchmark data, so the truth of the unlabelled cases is known).

A ``soft / true`` well above ``argmax / true`` says the soft prior grows the pseudo-labels
beyond the branch's own decision, the tail being the reason when ``tail`` is large.

``--trace`` reads instead the ``pseudo_fg`` column of each run's ``log.csv`` (the tumour
fraction of the unlabelled crops' pseudo-labels, logged by ``ours``; an archived run is
enough, no weights) and prints its mean per tenth of training beside the true tumour
fraction of uniformly placed crops of the run's unlabelled cases and of its labelled ones.

Usage: python benchmarks/pseudo_volume.py RUN_DIR... [--crops 8] [--trace] [--append]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from common import append_benchmark

from duetseg.config import Config
from duetseg.data.cache import Cache
from duetseg.data.sampling import TwoStreamBatches
from duetseg.run.config import load_run_config
from duetseg.run.layout import RunDir
from duetseg.run.trained import load_trained_run

__all__ = ["crop_predictions", "crop_volumes", "volume_ratios", "trace_means"]


def crop_volumes(probs: dict[str, np.ndarray], label: np.ndarray) -> dict[str, np.ndarray]:
    """Output -> ``[true, argmax, soft, tail]`` tumour voxels of one crop.

    Args:
        probs: output name -> (C, X, Y, Z) softmax of the crop.
        label: (X, Y, Z) classes of the crop.
    """
    true = float((label > 0).sum())
    out = {}
    for name, p in probs.items():
        fg = 1.0 - p[0]  # tumour probability, every foreground class together
        out[name] = np.array([true, float((fg > 0.5).sum()), float(fg.sum()),
                              float(fg[fg < 0.5].sum())])
    return out


def volume_ratios(totals: np.ndarray) -> tuple[float, float, float]:
    """``(argmax, soft, tail)`` over ``true`` from summed ``[true, argmax, soft, tail]``."""
    true = max(totals[0], 1.0)
    return totals[1] / true, totals[2] / true, totals[3] / true


def crop_predictions(run, run_dir: Path, n_crops: int, seed: int = 0,
                     splits: tuple[str, ...] = ("unlabeled", "test")):
    """Yield ``(split, case, box, probs)`` for ``n_crops`` uniformly placed training-size
    crops of each case of ``splits``, ``probs`` being output -> (C, X, Y, Z) softmax of the
    crop through ``run``'s network on its own (seeded by ``seed``)."""
    size = tuple(run.cfg.train.crop_size)
    listed = json.loads((run_dir / "splits.json").read_text())
    rng = np.random.default_rng(seed)
    for split in splits:
        for case in listed[split]:
            image = run.cache.load_image(case, mmap=False)
            shape = image.shape[1:]
            for _ in range(n_crops):
                corner = [int(rng.integers(0, max(n - s, 0) + 1)) for n, s in zip(shape, size)]
                box = tuple(slice(c, c + s) for c, s in zip(corner, size))
                x = torch.from_numpy(np.ascontiguousarray(image[(slice(None), *box)]))[None]
                with torch.no_grad():
                    probs = {k: v[0].numpy() for k, v in
                             run.method.output_probabilities(x.to(run.device)).items()}
                yield split, case, box, probs


def run_totals(run_dir: Path, n_crops: int, seed: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """(split, output) -> summed crop volumes, split being ``unlabeled`` or ``test``."""
    run = load_trained_run(run_dir, "last", "cpu")
    totals: dict[tuple[str, str], np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for split, case, box, probs in crop_predictions(run, run_dir, n_crops, seed):
        if case not in labels:
            labels = {case: run.cache.load_label(case, mmap=False)}
        for name, vols in crop_volumes(probs, labels[case][box]).items():
            key = (split, name)
            totals[key] = totals.get(key, 0.0) + vols
    return totals


def trace_means(rows: list[dict[str, str]], parts: int = 10) -> list[float]:
    """Mean ``pseudo_fg`` of the logged rows in each of ``parts`` equal spans of iterations."""
    logged = [(int(r["iteration"]), float(r["pseudo_fg"])) for r in rows if r.get("pseudo_fg")]
    if not logged:
        return []
    span = (max(it for it, _ in logged) + 1) / parts
    means = []
    for k in range(parts):
        values = [v for it, v in logged if k * span <= it < (k + 1) * span]
        means.append(float(np.mean(values)) if values else float("nan"))
    return means


def tumour_fraction(cfg: Config, cases: list[str]) -> float:
    """True tumour fraction of ``cases`` in uniformly placed crops of run ``cfg``'s size."""
    crops = TwoStreamBatches(Path(cfg.cache), cases, [], cfg.train.crop_size, 1, 1,
                             cfg.train.seed)
    return float(crops.label_fractions(Cache(cfg.cache).num_classes)[1:].sum())


def trace_table(runs: list[Path]) -> str:
    """Markdown: per run, ``pseudo_fg`` per tenth of training against the true fractions."""
    lines = ["| run | unlabelled true | labelled true | pseudo_fg per tenth of training |",
             "|---|---|---|---|"]
    for run_dir in runs:
        with RunDir(run_dir).log_file.open() as fh:
            means = trace_means(list(csv.DictReader(fh)))
        splits = json.loads((run_dir / "splits.json").read_text())
        cfg = load_run_config(run_dir)
        lines.append(f"| {run_dir.name} | {tumour_fraction(cfg, splits['unlabeled']):.3f} "
                     f"| {tumour_fraction(cfg, splits['labeled']):.3f} | "
                     + " ".join(f"{m:.3f}" for m in means) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--crops", type=int, default=8, help="crops per case")
    parser.add_argument("--trace", action="store_true",
                        help="the logged pseudo_fg over training instead (log.csv only)")
    parser.add_argument("--append", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.trace:
        table = trace_table(args.runs)
        if args.append:
            append_benchmark("Pseudo-labelled tumour fraction over training",
                             "python benchmarks/pseudo_volume.py --trace "
                             + " ".join(str(r) for r in args.runs), table,
                             notes="True fractions: uniformly placed crops of the training "
                                   "size, as the unlabelled crops are drawn.")
        print(table)
        return
    lines = ["| run | cases | output | argmax / true | soft / true | tail / true |",
             "|---|---|---|---|---|---|"]
    for run_dir in args.runs:
        for (split, name), totals in run_totals(run_dir, args.crops).items():
            a, s, t = volume_ratios(totals)
            lines.append(f"| {run_dir.name} | {split} | {name} | {a:.2f} | {s:.2f} | {t:.2f} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    if args.append:
        append_benchmark("Pseudo-label volume against the truth, per crop",
                         "python benchmarks/pseudo_volume.py " + " ".join(
                             [*(str(r) for r in args.runs), "--crops", str(args.crops)]),
                         table, notes="Ratios of summed tumour voxels over all crops.")
    else:
        print(table)


if __name__ == "__main__":
    main()
