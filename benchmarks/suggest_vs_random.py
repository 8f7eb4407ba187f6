"""Is ``duetseg suggest`` worth shipping? Contour its top-2 cases versus 2 random ones (issue 11).

For each fold of the cross-validated protocol (``cv_protocol.py``), from the finished run of
``--variant`` with N labelled cases:

- ``suggested``: ``duetseg suggest`` ranks the run's unlabelled training cases; the top 2
  become labelled (``splits.labeled_list`` = the N + 2), and the variant is retrained;
- ``random<r>``: 2 unlabelled cases drawn at random (seeded by fold and draw) instead,
  ``--draws`` times.

Same fold, test cases, iterations and seed as the base run; only the labelled set differs.
The summary pools per-case Dice over folds: the base run, the suggested arm, each random
draw, and the paired difference (suggested minus the mean of the draws, per case)
with a bootstrap 95 % CI. Runs live in ``<protocol>/suggest/``; finished ones are skipped,
interrupted ones resume.

``--signal`` trains nothing: it checks the ranking itself. Each base run's unlabelled
training cases (their labels are known here) get their ``suggest`` scores and the true Dice of
the run's prediction; a useful disagreement ranks the poorly segmented cases first, i.e. has a
negative Spearman correlation with Dice (per fold and pooled over folds of ranks within fold).

Usage: python benchmarks/suggest_vs_random.py --variant ours_cpssoft --cv 3 --labeled 2
       --iterations 1000 [--folds 0 1 2] [--arms suggested random0] [--draws 3]
       [--norm zscore_nonzero] [--summarize | --signal]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from common import append_benchmark
from cv_protocol import (
    NORM_SCHEMES,
    VARIANTS,
    cache_key,
    cv_root,
    norm_tag,
    prepare_cache,
    train_fold_run,
)
from run_archive import archive_path, finished_run
from scipy.stats import spearmanr

from duetseg.atomic import save_json, save_text
from duetseg.data.splits import load_splits
from duetseg.evaluation.metrics import dice
from duetseg.run.layout import RunDir
from duetseg.run.trained import load_trained_run, predict_probabilities
from duetseg.workflows.suggest import suggest_cases

TOP = 2


def arms(base: Path, fold: int, draws: int) -> dict[str, list[str]]:
    """Arm name -> the unlabelled cases it adds to the base run's labelled ones."""
    unlabelled = sorted(load_splits(RunDir(base).splits_file)["unlabeled"])
    ranked = [row["case"] for row in suggest_cases(base, "last", "cpu", progress=False)]
    out = {"suggested": ranked[:TOP]}
    for r in range(draws):
        rng = np.random.default_rng([fold, 1000 + r])
        out[f"random{r}"] = sorted(rng.choice(unlabelled, TOP, replace=False).tolist())
    return out


def suggest_dir(args) -> Path:
    """The folder of the arms' runs."""
    return cv_root(args.cv, args.labeled, args.iterations, norm_tag("", args.norm)) / "suggest"


def plan_path(args, fold: int) -> Path:
    """The arms of one fold, kept with the archived results (they hang on the base run's
    weights, which a fresh checkout lacks)."""
    return archive_path(suggest_dir(args)) / f"{args.variant}_f{fold}_plan.json"


def fold_plan(args, fold: int) -> tuple[dict[str, list[str]], Path]:
    """The arms of ``fold`` (made once from the base run's weights, then read back) and the
    finished base run."""
    base = suggest_dir(args).parent / f"{args.variant}_f{fold}"
    plan_file = plan_path(args, fold)
    finished_base = finished_run(base)
    if finished_base is None:
        raise SystemExit(f"{base} is not finished: run real_brats.py --cv first")
    if not plan_file.is_file() and not (base / "checkpoints" / "last.pt").is_file():
        raise SystemExit(f"{base} has no weights to rank cases with: real_brats.py --cv ... "
                         "--need-weights trains the run again")
    if plan_file.is_file():  # the same arms on every rerun, whatever suggest says later
        return json.loads(plan_file.read_text()), finished_base
    plan = arms(base, fold, args.draws)
    save_json(plan, plan_file)
    return plan, finished_base


def run_fold(args, fold: int) -> None:
    out = suggest_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    plan, finished_base = fold_plan(args, fold)
    labelled = load_splits(RunDir(finished_base).splits_file)["labeled"]
    cache = prepare_cache(cache_key(VARIANTS[args.variant][2], args.norm))
    for arm, added in plan.items():
        if args.arms and arm not in args.arms:
            continue
        listing = out / f"{args.variant}_f{fold}_{arm}.txt"
        save_text("\n".join(labelled + added) + "\n", listing)
        train_fold_run(args.variant, out / f"{args.variant}_f{fold}_{arm}", cache, args.cv,
                       fold, args.labeled, args.iterations,
                       [f"splits.labeled_list={listing}"])


def _case_dice(run_dir: Path) -> dict[str, float]:
    """Case -> Dice % of the primary output (foreground class 1) on the test split."""
    folder = RunDir(run_dir).eval("test")
    primary = json.loads(folder.summary_file.read_text())["primary_output"]
    with folder.metrics_file.open() as fh:
        return {row["case"]: float(row["dice"]) for row in csv.DictReader(fh)
                if row["output"] == primary and row["class"] == "1"}


def summarize(args, folds: list[int]) -> None:
    out = suggest_dir(args)
    per_arm: dict[str, dict[str, float]] = {}
    for fold in folds:
        plan_file = plan_path(args, fold)
        if not plan_file.is_file():
            continue
        base = finished_run(out.parent / f"{args.variant}_f{fold}")
        if base is not None:  # the run the arms start from: what 2 more labels add
            per_arm.setdefault(f"base ({args.labeled} labelled)", {}).update(_case_dice(base))
        for arm in json.loads(plan_file.read_text()):
            run_dir = finished_run(out / f"{args.variant}_f{fold}_{arm}")
            if run_dir is not None:
                per_arm.setdefault(arm, {}).update(_case_dice(run_dir))
    randoms = [a for a in per_arm if a.startswith("random")]
    cases = sorted(set(per_arm.get("suggested", {})).intersection(
        *(per_arm[a] for a in randoms))) if randoms else []
    lines = ["| arm | mean Dice % | n cases |", "|---|---|---|"]
    for arm, values in per_arm.items():
        lines.append(f"| {arm} | {np.mean(list(values.values())):.2f} | {len(values)} |")
    if cases:
        diff = np.array([per_arm["suggested"][c] - np.mean([per_arm[a][c] for a in randoms])
                         for c in cases])
        boot = np.random.default_rng(0).choice(diff, (10000, diff.size)).mean(1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        lines.append(f"| suggested − mean of random | {diff.mean():+.2f} "
                     f"[{lo:+.2f}, {hi:+.2f}] | {diff.size} |")
    table = "\n".join(lines)
    print(table)
    append_benchmark(
        f"Suggested vs random cases to contour, {args.variant}, {args.cv}-fold CV, "
        f"{args.labeled} + {TOP} labelled",
        f"python benchmarks/suggest_vs_random.py --variant {args.variant} --cv {args.cv} "
        f"--labeled {args.labeled} --iterations {args.iterations} --draws {args.draws} "
        f"--folds {' '.join(map(str, folds))} --summarize"
        + (f" --norm {args.norm}" if args.norm else ""),
        table, notes="Per-case Dice of the primary output, original geometry, pooled over "
                     "the folds run; the difference is paired per case.")


def signal_rows(base: Path) -> list[dict]:
    """``suggest``'s rows for ``base`` with the true Dice % of each case's primary output."""
    rows = suggest_cases(base, "last", "cpu", progress=False)
    run = load_trained_run(base, "last", "cpu")
    for row in rows:
        probs = predict_probabilities(run, run.cache.load_image(row["case"]))
        pred = probs[run.method.primary_output].argmax(0) > 0
        row["dice"] = dice(pred, run.cache.load_label(row["case"]) > 0)
    return rows


def signal(args, folds: list[int]) -> None:
    """Spearman correlation of the ranking scores with the true Dice (no training)."""
    lines = ["| fold | case | rank | disagreement | entropy | Dice % |",
             "|---|---|---|---|---|---|"]
    pooled: dict[str, list[float]] = {"disagreement": [], "entropy": [], "dice": []}
    rhos = []
    for fold in folds:
        base = suggest_dir(args).parent / f"{args.variant}_f{fold}"
        if not (base / "checkpoints" / "last.pt").is_file():
            print(f"fold {fold}: {base} has no weights here; skipped", flush=True)
            continue
        rows = signal_rows(base)
        for row in rows:
            lines.append(f"| {fold} | {row['case']} | {row['rank']} | {row['disagreement']:.3f} "
                         f"| {row['entropy']:.3f} | {row['dice']:.1f} |")
        rho = spearmanr([r["disagreement"] for r in rows], [r["dice"] for r in rows])[0]
        rhos.append(f"fold {fold}: {rho:+.2f} ({len(rows)} cases)")
        for key in pooled:  # ranks within the fold, so folds of other difficulty pool
            pooled[key] += list(np.argsort(np.argsort([r[key] for r in rows])) / len(rows))
    rho_d = spearmanr(pooled["disagreement"], pooled["dice"])
    rho_e = spearmanr(pooled["entropy"], pooled["dice"])
    table = "\n".join(lines + [
        "", f"Spearman(disagreement, Dice) per fold: {'; '.join(rhos)}",
        f"pooled (within-fold ranks, {len(pooled['dice'])} cases): disagreement "
        f"{rho_d[0]:+.2f} (p {rho_d[1]:.2g}), entropy {rho_e[0]:+.2f} (p {rho_e[1]:.2g})"])
    print(table)
    append_benchmark(
        f"Does suggest's ranking find the poorly segmented cases? {args.variant}, "
        f"{args.cv}-fold CV, {args.labeled} labelled",
        f"python benchmarks/suggest_vs_random.py --variant {args.variant} --cv {args.cv} "
        f"--labeled {args.labeled} --iterations {args.iterations} "
        f"--folds {' '.join(map(str, folds))} --signal"
        + (f" --norm {args.norm}" if args.norm else ""),
        table, notes="Each base run's unlabelled training cases, predicted in the 2 mm cache "
                     "geometry; Dice of the primary output against the (here known) label. "
                     "A useful ranking correlates negatively with Dice.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", default="ours_cpssoft")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--labeled", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--folds", nargs="+", type=int, default=None)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=None,
                        help="train only these arms (e.g. suggested random0), so that two "
                             "processes can share one fold; default every arm")
    parser.add_argument("--summarize", action="store_true")
    parser.add_argument("--signal", action="store_true",
                        help="no training: correlate each base run's ranking with the true Dice")
    parser.add_argument("--plan-only", action="store_true",
                        help="rank and save every fold's arms while the base runs' weights "
                             "are here; train nothing")
    parser.add_argument("--norm", default=None, choices=NORM_SCHEMES,
                        help="the protocol's intensity normalisation (as real_brats.py --norm)")
    args = parser.parse_args()
    folds = args.folds if args.folds is not None else list(range(args.cv))
    if args.summarize:
        summarize(args, folds)
        return
    if args.signal:
        signal(args, folds)
        return
    for fold in folds:
        if args.plan_only:
            print(f"fold {fold}: {fold_plan(args, fold)[0]}", flush=True)
        else:
            run_fold(args, fold)


if __name__ == "__main__":
    main()
