"""Cross-validated accuracy on the 15 real BraTS cases: every case is a test case once.

``python benchmarks/real_brats.py --cv 5 --labeled 2 --variants ours ours_w0`` trains each
named variant on each fold (``splits.folds=5``, ``splits.fold=k``; no validation split;
the training cases of a fold split into ``--labeled`` seeded labelled cases and the rest
unlabelled), evaluates the **last** checkpoint on the fold's test cases in the original
1 mm geometry, and with ``--summarize`` writes the pooled report, the "gain over
labelled-only" table (paired per-case differences over all folds, bootstrap 95 % CI,
Wilcoxon p; per branch and for the ensemble) and appends it to BENCHMARKS.md.

Runs go to ``runs/cv/K<folds>_L<labeled>_<iterations>it<tag>/<variant>_f<k>`` (seed 0) or
``<variant>_s<seed>_f<k>`` (``--seeds 0 1 ...``: repeated cross-validation, each seed another
partition, labelled draw and training seed; the summary pools all seeds); a finished
run (its test summary exists) is skipped and an interrupted one resumes, so the same
command finishes the grid across sessions. Folds are run in the outer loop so that paired
comparisons become available fold by fold.

Variants (``VARIANTS``): a method name, config overrides and a cache (``CACHES``: the
modalities and the intensity normalisation; each its own cache). ``ours`` pins the paper's
objective (soft MSE), whatever the library default. ``ours_w0`` is the fair labelled-only control:
``ours`` with the unsupervised weight at 0 but the same batches (the unlabelled crops still
pass through the network, so BatchNorm sees the same data).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import REPO, SHARED_DATA, require_shared_data
from run_archive import archive_run, finished_run

from duetseg.config import NormalizationConfig, PrepareConfig, load_config
from duetseg.data.prepare import prepare_dataset
from duetseg.run.layout import RunDir
from duetseg.training import train
from duetseg.workflows.evaluate import evaluate_run

__all__ = ["VARIANTS", "NORM_SCHEMES", "run_cv", "summarize_cv", "cv_root", "cv_run_dir",
           "prepare_cache", "train_fold_run", "report_tables"]

W0 = ["method.consistency_weight=0"]
ALL = ["model.branch_input=all"]
# two independent networks that each read both modalities (no MMF, no MAE)
INDEP = ALL + ["model.fusion=none", "model.mae=false"]
CROSS = ["method.options.consistency=cross_pseudo"]
# plain cross pseudo-labels (argmax), the default until 2026-12-03, pinned
CPS = CROSS + ["method.options.pseudo_prior=off"]
# the default since: cross pseudo-labels that keep the source branch's expected volume
SOFT = CROSS + ["method.options.pseudo_prior=soft"]
CE_SOFT = ["method.options.consistency=hard_pseudo", "method.options.pseudo_threshold=0",
           "method.options.pseudo_prior=soft"]
NO_MAE = ["model.mae=false"]
NO_FUSION = ["model.fusion=none", *NO_MAE]  # two branches, each on its own modality
SG = ["method.options.cross_branch_grad=false"]
MSE = ["method.options.consistency=mse"]  # the paper's objective, pinned
MD = ["train.modality_dropout=0.3"]
AUG = ["train.intensity_augment=0.5"]

# cache key -> (modalities, intensity normalisation)
CACHES: dict[str, tuple[tuple[str, ...], str]] = {
    "minmax": (("t1ce", "t2"), "minmax"),
    "zscore_nonzero": (("t1ce", "t2"), "zscore_nonzero"),
    "percentile_minmax": (("t1ce", "t2"), "percentile_minmax"),
    "t1ce_only": (("t1ce",), "minmax"),
    "t2_only": (("t2",), "minmax"),
}
NORM_SCHEMES = sorted({scheme for _, scheme in CACHES.values()})  # choices of --norm

# name -> (method, overrides, cache key of CACHES)
VARIANTS: dict[str, tuple[str, list[str], str]] = {
    "ours": ("ours", MSE, "minmax"),
    "ours_w0": ("ours", W0, "minmax"),
    "supervised": ("supervised", [], "minmax"),
    "ict": ("ict", [], "minmax"),
    "mean_teacher": ("mean_teacher", [], "minmax"),
    "mmcml": ("mmcml", [], "minmax"),
    "bcp": ("bcp", [], "minmax"),
    # a modality missing at prediction (issue 11): modality dropout, single-modality nets
    "ours_md": ("ours", SOFT + MD, "minmax"),
    # ... and the crops that lost an input learn the full-input prediction
    "ours_mdkd": ("ours", SOFT + MD + ["method.options.missing_distill=true"], "minmax"),
    "mt_t1ce": ("mean_teacher", [], "t1ce_only"),
    "mt_t2": ("mean_teacher", [], "t2_only"),
    # what each branch sees
    "ours_all": ("ours", ALL, "minmax"),
    "ours_all_w0": ("ours", ALL + W0, "minmax"),
    # consistency target
    "ours_conf": ("ours", ["method.options.consistency=confident_teacher"], "minmax"),
    "ours_hard": ("ours", ["method.options.consistency=hard_pseudo"], "minmax"),
    "ours_cps": ("ours", CPS, "minmax"),
    "ours_ens": ("ours", ["method.options.consistency=ensemble_pseudo"], "minmax"),
    "ours_confps": ("ours", ["method.options.consistency=confident_pseudo"], "minmax"),
    "ours_cpsfg": ("ours", ["method.options.consistency=foreground_pseudo"], "minmax"),
    "ours_cpsfg05": ("ours", ["method.options.consistency=foreground_pseudo",
                              "method.options.erase_weight=0.5"], "minmax"),
    # pseudo-label volumes kept at the labelled prior (methods/prior_guard.py)
    "ours_cpsprior": ("ours", CROSS + ["method.options.pseudo_prior=match"], "minmax"),
    # pseudo-labels keep the source branch's own expected volume per crop (no prior)
    "ours_cpssoft": ("ours", SOFT, "minmax"),
    # the same volume-kept cross pseudo-labels learnt by cross-entropy alone (no Dice part)
    "ours_cesoft": ("ours", CE_SOFT, "minmax"),
    # the pseudo-label volume held at (below) its mean over 10-20 % of training
    "ours_anchor": ("ours", CROSS + ["method.options.pseudo_prior=anchor"], "minmax"),
    "ours_anchorcap": ("ours", CROSS + ["method.options.pseudo_prior=anchor_cap"], "minmax"),
    "ours_cpsfgcap": ("ours", ["method.options.consistency=foreground_pseudo",
                               "method.options.pseudo_prior=cap"], "minmax"),
    "ours_cutmix": ("ours", CPS + ["method.options.cutmix=true"], "minmax"),
    "ours_int": ("ours", CPS + ["method.options.intensity_view=true"], "minmax"),
    "ours_cp": ("ours", CPS + ["method.options.copy_paste=true"], "minmax"),
    # each branch's consistency loss moves that branch only (detached MMF gates)
    "ours_sg": ("ours", SG, "minmax"),
    "ours_sg_cps": ("ours", SG + CPS, "minmax"),
    "ours_all_conf": ("ours", ALL + ["method.options.consistency=confident_teacher"],
                      "minmax"),
    # fusion, ramp-up, dropout
    "ours_indep": ("ours", INDEP, "minmax"),
    "ours_indep_w0": ("ours", INDEP + W0, "minmax"),
    "ours_indep_cps": ("ours", INDEP + CPS, "minmax"),
    "ours_add": ("ours", ["model.fusion=add"], "minmax"),
    "ours_add_w0": ("ours", ["model.fusion=add", *W0], "minmax"),
    "ours_ramp0": ("ours", ["method.rampup_fraction=0"], "minmax"),
    "ours_drop01": ("ours", ["model.dropout=0.1"], "minmax"),
    "ours_drop01_w0": ("ours", ["model.dropout=0.1", *W0], "minmax"),
    # the paper's Table 2 on real data: each switch off in turn, same batches (``W0`` rows
    # keep the unlabelled crops in the batch); MMF + MAE is ``ours_w0``, the full model
    # ``ours_cpssoft`` (the default)
    "abl_base": ("ours", NO_FUSION + W0, "minmax"),
    "abl_mmf": ("ours", NO_MAE + W0, "minmax"),
    "abl_mmf_mcml": ("ours", NO_MAE + SOFT, "minmax"),
    # intensity normalisation
    "ours_zscore": ("ours", [], "zscore_nonzero"),
    "ours_zscore_w0": ("ours", W0, "zscore_nonzero"),
    "ours_pct": ("ours", [], "percentile_minmax"),
    "ours_pct_w0": ("ours", W0, "percentile_minmax"),
    # intensity augmentation of every crop
    "ours_aug": ("ours", AUG, "minmax"),
    "ours_aug_w0": ("ours", AUG + W0, "minmax"),
    "ours_zscore_aug": ("ours", AUG, "zscore_nonzero"),
    "ours_zscore_aug_w0": ("ours", AUG + W0, "zscore_nonzero"),
}


def cache_key(key: str, norm: str | None = None) -> str:
    """The ``CACHES`` key of cache ``key`` with its normalisation replaced by ``norm``.

    An existing entry with the same modalities and scheme is reused (its cache too);
    otherwise ``<key>_<norm>`` is added.
    """
    modalities, scheme = CACHES[key]
    if norm is None or scheme == norm:
        return key
    for other, spec in CACHES.items():
        if spec == (modalities, norm):
            return other
    CACHES[f"{key}_{norm}"] = (modalities, norm)
    return f"{key}_{norm}"


def prepare_cache(key: str) -> Path:
    """The 2 mm whole-tumour cache of the 15 cases for one entry of ``CACHES``.

    Without ``../shared`` (e.g. on a GPU machine) a finished cache in ``local_data`` (from
    ``gpu_grid.py unpack``) is used as it is.
    """
    name = "brats_2mm" if key == "minmax" else f"brats_2mm_{key}"
    cache = REPO / "local_data" / name
    if not (SHARED_DATA / "brats-dev").exists() and (cache / "dataset.json").exists():
        return cache
    src = require_shared_data("brats-dev")
    modalities, scheme = CACHES[key]
    prep = PrepareConfig(modalities=list(modalities), layout="brats", target_spacing=(2, 2, 2),
                         label_mapping="whole_tumour",
                         default_normalization=NormalizationConfig(scheme=scheme))
    return prepare_dataset(src, cache, prep, num_workers=2).root


def cv_root(folds: int, labeled: int, iterations: int, tag: str = "") -> Path:
    """Folder of one protocol's runs."""
    return REPO / "runs" / "cv" / f"K{folds}_L{labeled}_{iterations}it{tag}"


def cv_run_dir(root: Path, name: str, fold: int, seed: int = 0) -> Path:
    """Run folder of variant ``name`` on ``fold``; seed 0 keeps the original names."""
    return root / (f"{name}_f{fold}" if seed == 0 else f"{name}_s{seed}_f{fold}")


def train_fold_run(name: str, run_dir: Path, cache: Path, folds: int, fold: int,
                   labeled: int, iterations: int, extra: list[str], seed: int = 0,
                   need_weights: bool = False) -> None:
    """Train (or resume) variant ``name`` on one fold into ``run_dir``, evaluate and archive it.

    A run that is finished here or in the archive (``run_archive.py``) is skipped, unless
    ``need_weights`` and ``run_dir`` has no last checkpoint (a fresh checkout: only the
    archived results came with it): the run is then trained again, with the same seeds,
    and its archived results are replaced; the old and new Dice are printed side by side.
    """
    done = finished_run(run_dir)
    has_weights = (run_dir / "checkpoints" / "last.pt").is_file()
    if done is not None and (has_weights or not need_weights):
        return
    before = None if done is None else primary_dice(
        json.loads(RunDir(done).eval("test").summary_file.read_text()))
    method, overrides, _ = VARIANTS[name]
    cfg = load_config("cpu_small", [
        f"name={name}", f"cache={cache}", f"method.name={method}",
        f"splits.folds={folds}", f"splits.fold={fold}", "splits.val=0",
        f"splits.labeled={labeled}", f"splits.seed={seed}", f"train.seed={seed}",
        f"train.max_iterations={iterations}", *overrides, *extra])
    t0 = time.time()
    print(f"== {run_dir.name} ({run_dir.parent.name})", flush=True)
    train(cfg, run_dir, resume=RunDir(run_dir).resumable)
    summary = evaluate_run(run_dir, "test", checkpoint="last")
    primary = primary_dice(summary)
    archive_run(run_dir)
    again = "" if before is None else f" (archived before: {before:.1f})"
    print(f"   done in {time.time() - t0:.0f} s: Dice {primary:.1f}{again}", flush=True)


def primary_dice(summary: dict) -> float:
    """Mean Dice % of the primary output (class 1) in an evaluation's ``summary.json``."""
    return summary["metrics"][summary["primary_output"]]["1"]["dice"]["mean"]


def norm_tag(tag: str, norm: str | None) -> str:
    """The protocol folder's tag: runs with another normalisation live apart."""
    return f"{tag}_{norm}" if norm else tag


def run_cv(variants: list[str], folds: int, fold_ids: list[int], labeled: int,
           iterations: int, extra: list[str], tag: str = "",
           seeds: tuple[int, ...] = (0,), norm: str | None = None,
           need_weights: bool = False) -> list[Path]:
    """Train and evaluate every (seed, fold, variant) not finished yet; returns the run dirs.

    Each seed is one repetition of the cross-validation: ``splits.seed`` draws another
    K-fold partition and other labelled cases, ``train.seed`` another training run. Every
    case is a test case once per seed, and a run pairs per case with the baseline run of
    the same seed and fold. ``norm`` gives every variant's cache that intensity
    normalisation (runs in the folder tagged ``_<norm>``). ``need_weights``: see
    :func:`train_fold_run`.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    root = cv_root(folds, labeled, iterations, norm_tag(tag, norm))
    keys = {v: cache_key(VARIANTS[v][2], norm) for v in variants}
    caches = {key: prepare_cache(key) for key in set(keys.values())}
    run_dirs = []
    for seed in seeds:
        for fold in fold_ids:
            for name in variants:
                run_dir = cv_run_dir(root, name, fold, seed)
                run_dirs.append(run_dir)
                train_fold_run(name, run_dir, caches[keys[name]], folds, fold, labeled,
                               iterations, extra, seed, need_weights)
    return run_dirs


def summarize_cv(variants: list[str], folds: int, fold_ids: list[int], labeled: int,
                 iterations: int, tag: str, seeds: tuple[int, ...], baseline: str,
                 collapse: bool = False, versus: list[str] | None = None,
                 norm: str | None = None, table2: bool = False) -> None:
    """Report the finished runs of the protocol and append the gain table to BENCHMARKS.md.

    ``versus``: other baselines; for each, the gain of the first variant over it (e.g. the
    default against ``ict``, ``mean_teacher``, ``mmcml``) is added below the main table.
    ``table2``: add the ablation table (per-branch Dice for each MMF / MAE / MCML switch).
    """
    from common import append_benchmark

    root = cv_root(folds, labeled, iterations, norm_tag(tag, norm))
    runs = [cv_run_dir(root, v, k, seed) for seed in seeds for k in fold_ids for v in variants]
    found = {r: finished_run(r) for r in runs}
    done = [path for path in found.values() if path is not None]
    missing = sorted(r.name for r, path in found.items() if path is None)
    tables = report_tables(done, root.parent / f"report_{root.name}", variants[0], baseline,
                           versus, collapse, table2)
    notes = (f"{folds}-fold cross-validation over the 15 brats-dev cases (folds run: "
             f"{fold_ids}, seeds {list(seeds)}), {labeled} labelled per fold (drawn by the "
             f"seed), the rest of the fold's "
             f"training cases unlabelled, no validation split, last checkpoint; cpu_small "
             f"(2 mm, 48³ crops, width 8) at {iterations} iterations; metrics in the original "
             f"1 mm geometry. Gains are per-case paired differences pooled over folds."
             + (f" Every cache normalised with {norm}." if norm else ""))
    if missing:
        notes += f" Not finished: {', '.join(missing)}."
    append_benchmark(f"Real BraTS, {folds}-fold CV, {labeled} labelled, {iterations} it"
                     f"{' ' + tag if tag else ''}{', ' + norm if norm else ''}",
                     f"python benchmarks/real_brats.py --cv {folds} --labeled {labeled} "
                     f"--iterations {iterations} --methods {' '.join(variants)} --summarize "
                     + ("" if fold_ids == list(range(folds))
                        else f"--folds {' '.join(map(str, fold_ids))} ")
                     + f"--baseline {baseline}" + (f" --tag {tag}" if tag else "")
                     + ("" if list(seeds) == [0] else f" --seeds {' '.join(map(str, seeds))}")
                     + (f" --norm {norm}" if norm else "")
                     + (" --collapse" if collapse else "")
                     + (" --table2" if table2 else "")
                     + (f" --versus {' '.join(versus)}" if versus else ""),
                     tables, notes=notes)


def report_tables(done: list[Path], out_dir: Path, reference: str, baseline: str,
                  versus: list[str] | None = None, collapse: bool = False,
                  table2: bool = False) -> str:
    """``duetseg report`` of finished runs; returns Table 1 and the gain table(s) as markdown.

    ``versus``: other baselines; for each, the gain of ``reference`` over it (e.g. the
    default against ``ict``, ``mean_teacher``, ``mmcml``) is added below the main table.
    ``collapse`` adds the unlabelled-volume check (needs the runs' checkpoints).
    ``table2`` adds the ablation table when the runs hold at least two switch combinations.
    """
    from duetseg.reporting.collect import collect_runs
    from duetseg.reporting.gain import build_gain_table
    from duetseg.reporting.report import make_report

    out = make_report(done, out_dir, baseline=baseline, reference=reference)
    table1 = (out.parent / "table1.md").read_text().strip()
    gain = (out.parent / "gain.md").read_text().strip()
    ablation = out.parent / "table2.md"
    if table2 and ablation.is_file():
        table1 += "\n\n" + ablation.read_text().strip()
    if versus:
        records = collect_runs(done)
        for other in versus:
            table = build_gain_table(records, other, names=[reference])
            gain += "\n\n" + table.to_markdown().strip()
    if collapse:
        from collapse_check import collapse_rows

        gain += ("\n\nPredicted tumour volume on each run's unlabelled training cases "
                 "(collapse check, `benchmarks/collapse_check.py`):\n\n"
                 + "\n".join(collapse_rows(done)))
    return table1 + "\n\n" + gain
