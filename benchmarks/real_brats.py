"""Accuracy on the 15 real BraTS cases at a CPU-friendly setting: ours vs supervised.

Prepares ../shared/data/brats-dev (T1ce + T2, whole tumour, 2 mm spacing) into
``local_data/brats_2mm``, trains each method with the ``cpu_small`` preset (identical
settings and splits: 2 labelled, the rest of train unlabelled, 2 val, 5 test), evaluates the
test split in the original 1 mm geometry and appends a table to BENCHMARKS.md.

Usage: python benchmarks/real_brats.py [--methods ours supervised] [--iterations 1500]
       [--seed 0]
       python benchmarks/real_brats.py --cv 5 --labeled 2 --methods ours ours_w0
         [--folds 0 1] [--threads 1] [--summarize --baseline ours_w0]
         (cross-validation over the 15 cases, see cv_protocol.py)
       python benchmarks/real_brats.py --methods ours supervised --summarize-seeds 0 1 2
         (no training: ``duetseg report`` Table 1 over the finished runs of those seeds:
         mean of the per-seed means ± mean per-seed std over cases, and the seed SD)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from common import REPO, append_benchmark
from cv_protocol import NORM_SCHEMES, prepare_cache, run_cv, summarize_cv

from duetseg.config import load_config
from duetseg.reporting.report import make_report
from duetseg.run.layout import RunDir
from duetseg.training import train
from duetseg.workflows.evaluate import evaluate_run


def summarize_seeds(methods: list[str], seeds: list[int], tag: str) -> None:
    """Table 1 over the runs of several seeds (skips a run that has no test evaluation)."""
    runs = [REPO / "runs" / "bench_real" / f"{m}{tag}_s{s}" for m in methods for s in seeds]
    done = [r for r in runs if RunDir(r).is_evaluated("test")]
    missing = sorted(set(runs) - set(done))
    out = make_report(done, REPO / "runs" / "report_real_seeds")
    table = (out.parent / "table1.md").read_text().strip()
    notes = ("cpu_small preset (2 mm, 48³ crops, width 8, 1500 iterations); each seed changes "
             "the split (which 2 cases are labelled, which 5 are test) and the training "
             f"seed. Runs: {', '.join(r.name for r in done)}.")
    if missing:
        notes += f" Not run: {', '.join(r.name for r in missing)}."
    append_benchmark(f"Real BraTS across seeds {', '.join(map(str, seeds))} (cpu_small)",
                     "python benchmarks/real_brats.py " + " ".join(sys.argv[1:]), table,
                     notes=notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--methods", nargs="+", default=["ours", "supervised"])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], help="extra config overrides")
    parser.add_argument("--tag", default="")
    parser.add_argument("--summarize-seeds", nargs="+", type=int, default=None)
    parser.add_argument("--cv", type=int, default=None, metavar="K",
                        help="K-fold cross-validation (see cv_protocol.py); --methods are "
                             "then variant names of cv_protocol.VARIANTS")
    parser.add_argument("--folds", nargs="+", type=int, default=None,
                        help="with --cv: only these folds (default: all K)")
    parser.add_argument("--labeled", type=int, default=2, help="with --cv: labelled cases")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="with --cv: seeds (labelled draw + training), default --seed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--need-weights", action="store_true",
                        help="with --cv: train again the finished runs whose weights are not "
                             "here (only their archived results), for missing_modality.py "
                             "and suggest_vs_random.py")
    parser.add_argument("--summarize", action="store_true",
                        help="with --cv: report the finished runs, no training")
    parser.add_argument("--baseline", default="ours_w0", help="with --cv --summarize")
    parser.add_argument("--versus", nargs="*", default=None,
                        help="with --cv --summarize: gain of the first method over each")
    parser.add_argument("--table2", action="store_true",
                        help="with --cv --summarize: add the ablation table (paper Table 2)")
    parser.add_argument("--collapse", action="store_true",
                        help="with --cv --summarize: add the unlabelled-volume collapse check")
    parser.add_argument("--norm", default=None, choices=NORM_SCHEMES,
                        help="with --cv: intensity normalisation of every variant's cache "
                             "(runs in the folder tagged _NORM)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cv is not None:
        folds = args.folds if args.folds is not None else list(range(args.cv))
        seeds = tuple(args.seeds) if args.seeds is not None else (args.seed,)
        if args.summarize:
            summarize_cv(args.methods, args.cv, folds, args.labeled, args.iterations,
                         args.tag, seeds, args.baseline, args.collapse, args.versus,
                         args.norm, args.table2)
        else:
            run_cv(args.methods, args.cv, folds, args.labeled, args.iterations, args.set,
                   args.tag, seeds, args.norm, args.need_weights)
        return
    if args.summarize_seeds is not None:
        summarize_seeds(args.methods, args.summarize_seeds, args.tag)
        return
    cache_root = prepare_cache("minmax")  # the historical single-split runs: min-max
    lines = ["| method | output | Dice % (mean ± std) | ASD mm | HD95 mm | n | train s |",
             "|---|---|---|---|---|---|---|"]
    for name in args.methods:
        over = [f"cache={cache_root}", f"method.name={name}",
                f"train.max_iterations={args.iterations}", f"splits.seed={args.seed}",
                f"train.seed={args.seed}", *args.set]
        cfg = load_config("cpu_small", over)
        run_dir = REPO / "runs" / "bench_real" / f"{name}{args.tag}_s{args.seed}"
        t0 = time.time()
        train(cfg, run_dir, resume=RunDir(run_dir).resumable)
        seconds = time.time() - t0
        summary = evaluate_run(run_dir, "test")
        for output, per_class in summary["metrics"].items():
            m = per_class["1"]
            lines.append(
                f"| {name}{args.tag} | {output} | {m['dice']['mean']:.1f} ± {m['dice']['std']:.1f}"
                f" | {m['asd']['mean']:.2f} ± {m['asd']['std']:.2f} | {m['hd95']['mean']:.2f}"
                f" | {m['dice']['n']} | {seconds:.0f} |"
            )
        print(json.dumps(summary["metrics"], indent=1)[:2000])
    append_benchmark(
        "Real BraTS (brats-dev, T1ce + T2, whole tumour), cpu_small preset",
        "python benchmarks/real_brats.py " + " ".join(sys.argv[1:]),
        "\n".join(lines),
        notes=("2 mm spacing, 48³ crops, base width 8, batch 2 labelled + 2 unlabelled, "
               f"{args.iterations} iterations, SGD 0.01 poly; split seed {args.seed}: "
               "2 labelled / rest unlabelled train, 2 val, 5 test; metrics in the original "
               "1 mm geometry; ASD = directed prediction → reference."),
    )


if __name__ == "__main__":
    main()
