"""A modality missing at prediction: Dice with both inputs, T1ce only and T2 only (issue 11).

For finished runs of the cross-validated protocol (``cv_protocol.py``), each test case is
predicted with both modalities and with each one zero-filled, the way ``duetseg predict``
treats a case lacking it (:func:`duetseg.workflows.missing.present_outputs`: the absent
branch's output is dropped and the ensemble is the mean of the present branches). Runs
trained on one modality only (``mt_t1ce``, ``mt_t2``: Mean Teacher on that modality's cache)
are predicted on their own input. Dice % of the primary output in each run's cache
geometry (2 mm), pooled over the folds and seeds given; paired rows pair a case of one
seed with the same case of the same seed.

Each run's per-case Dice is kept beside its archived results
(``benchmarks/results/.../<run>/eval/missing_inputs.json``, committed), so the table can be
pooled again in a checkout without the weights; a run with weights is always predicted again.

Usage: python benchmarks/missing_modality.py --cv 3 --labeled 2 --iterations 1000
       --variants ours_cpssoft ours_md mt_t1ce mt_t2 [--folds 0 1 2] [--seeds 0 1 2]
       [--norm zscore_nonzero]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from common import append_benchmark
from cv_protocol import NORM_SCHEMES, cv_root, cv_run_dir, norm_tag
from run_archive import archive_path

from duetseg.atomic import save_json
from duetseg.evaluation.metrics import dice
from duetseg.output_spec import branch_modalities
from duetseg.reporting.bootstrap import bootstrap_mean_ci
from duetseg.run.trained import load_trained_run, predict_probabilities
from duetseg.workflows.missing import present_outputs


def run_dice(run_dir) -> dict[str, dict[str, float]]:
    """Inputs ("t1ce+t2", "t1ce", ...) -> case -> Dice % of ``run_dir`` on its test cases."""
    run = load_trained_run(run_dir, "last", "cpu")
    modalities = list(run.cache.modalities)
    subsets = [modalities] + ([[m] for m in modalities] if len(modalities) > 1 else [])
    branches = branch_modalities(run.method.outputs())
    out: dict[str, dict[str, float]] = {}
    for case in json.loads((run_dir / "splits.json").read_text())["test"]:
        image = run.cache.load_image(case, mmap=False)
        label = run.cache.load_label(case, mmap=False) > 0
        for present in subsets:
            x = image.copy()
            for c, m in enumerate(modalities):
                if m not in present:
                    x[c] = 0.0
            with torch.no_grad():
                probs = present_outputs(predict_probabilities(run, x), modalities, present,
                                        branches)
            pred = probs[run.method.primary_output][1:].sum(0) > 0.5
            out.setdefault("+".join(present), {})[case] = float(dice(pred, label))
    return out


def recorded_dice(run_dir) -> dict[str, dict[str, float]] | None:
    """:func:`run_dice` of ``run_dir``: computed (and recorded) where its weights are here,
    else read from the record an earlier computation kept in the archive, else ``None``."""
    record = archive_path(run_dir) / "eval" / "missing_inputs.json"
    if (run_dir / "checkpoints" / "last.pt").is_file():
        values = run_dice(run_dir)
        if record.parent.is_dir():  # only runs the archive holds (it drops stale records)
            save_json(values, record)
        return values
    return json.loads(record.read_text()) if record.is_file() else None


Pooled = dict[str, dict[str, dict[str, float]]]  # variant -> inputs -> seed:case -> Dice %


def paired_rows(pooled: Pooled) -> list[str]:
    """Markdown rows of paired per-case differences (mean, bootstrap 95 % CI, n).

    - each multi-modal variant on one modality minus the variant trained on that modality
      alone (a variant with a single input set), the issue's "within 3 points";
    - each further multi-modal variant minus the first one listed (e.g. with modality
      dropout minus without), on every input set.
    """
    single = {next(iter(v)): name for name, v in pooled.items() if len(v) == 1}
    multi = [name for name, v in pooled.items() if len(v) > 1]
    pairs = [(name, alone, inputs) for name in multi for inputs, alone in single.items()
             if inputs in pooled[name]]
    pairs += [(name, multi[0], inputs) for name in multi[1:] for inputs in pooled[name]
              if inputs in pooled[multi[0]]]
    rows = []
    for name, ref, inputs in pairs:
        a, b = pooled[name][inputs], pooled[ref][inputs]
        cases = sorted(set(a) & set(b))
        diff = np.array([a[c] - b[c] for c in cases])
        low, high = bootstrap_mean_ci(diff)
        rows.append(f"| {name} − {ref} | {inputs} | {diff.mean():+.2f} [{low:+.2f}, "
                    f"{high:+.2f}] | {len(cases)} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--labeled", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--folds", nargs="+", type=int, default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="seeds of the runs (real_brats.py --seeds); 0 alone by default")
    parser.add_argument("--norm", default=None, choices=NORM_SCHEMES,
                        help="the protocol's intensity normalisation (as real_brats.py --norm)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    folds = args.folds if args.folds is not None else list(range(args.cv))
    root = cv_root(args.cv, args.labeled, args.iterations, norm_tag("", args.norm))
    lines = ["| variant | runs done | inputs | mean Dice % | n cases |", "|---|---|---|---|---|"]
    pooled: Pooled = {}
    for variant in args.variants:
        runs = {(s, k): cv_run_dir(root, variant, k, s) for s in args.seeds for k in folds}
        done = {sk: d for sk, r in runs.items() if (d := recorded_dice(r)) is not None}
        if len(done) < len(runs):
            print(f"{variant}: {len(runs) - len(done)} run(s) (seed, fold) without weights or "
                  "record here; real_brats.py --cv ... --need-weights trains them", flush=True)
        for (seed, _), per_inputs in done.items():
            for inputs, values in per_inputs.items():
                pooled.setdefault(variant, {}).setdefault(inputs, {}).update(
                    {f"s{seed}:{case}": v for case, v in values.items()})
        for inputs, values in pooled.get(variant, {}).items():
            lines.append(f"| {variant} | {len(done)}/{len(runs)} | {inputs} | "
                         f"{np.mean(list(values.values())):.2f} | {len(values)} |")
            print(lines[-1], flush=True)
    lines += ["", "| paired difference | inputs | mean [95 % CI] | n cases |",
              "|---|---|---|---|", *paired_rows(pooled)]
    table = "\n".join(lines)
    print(table)
    append_benchmark(
        f"A modality missing at prediction, {args.cv}-fold CV, {args.labeled} labelled",
        "python benchmarks/missing_modality.py " + " ".join(
            [f"--cv {args.cv}", f"--labeled {args.labeled}", f"--iterations {args.iterations}",
             "--variants", *args.variants, "--folds", *map(str, folds),
             "--seeds", *map(str, args.seeds)]
            + (["--norm", args.norm] if args.norm else [])),
        table, notes="Absent inputs zero-filled as `duetseg predict` does; the absent "
                     "branch's output dropped; Dice in the 2 mm cache geometry. Paired rows: "
                     "per-case differences, percentile bootstrap CI over cases.")


if __name__ == "__main__":
    main()
