"""The accuracy, ablation and missing-modality sections of the results page.

They are built from archived evaluated runs (``<results>/cv/<protocol>/<run>/``, see
:mod:`duetseg.analysis.archive`) with the library's reporting. Configurations are told
apart by the run config's ``name`` (the protocol grids ``benchmarks/grids/cv_*.yaml`` set
it to the archived names); :data:`ALIASES` gives the default and its labelled-only control
their display names.
"""

from __future__ import annotations

from pathlib import Path

from duetseg.analysis.configurations import configurations_table
from duetseg.analysis.missing import paired_differences, pool_missing
from duetseg.analysis.records import markdown_table
from duetseg.reporting.bootstrap import N_RESAMPLES
from duetseg.reporting.collect import RunRecord, collect_runs
from duetseg.reporting.gain import build_gain_table
from duetseg.reporting.run_table import build_run_table
from duetseg.reporting.tables import build_table1, build_table2
from duetseg.run.layout import RunDir

__all__ = ["PROTOCOLS", "ALIASES", "DEFAULT", "CONTROL", "BASELINES", "load_protocol_runs",
           "accuracy_section", "ablation_section", "missing_section"]

# archived protocols: 3-fold CV of the 15 real cases, 2 or 4 labelled per fold
PROTOCOLS = ("cv/K3_L2_1000it_zscore_nonzero", "cv/K3_L4_1000it_zscore_nonzero")
DEFAULT = "ours (default)"
CONTROL = "ours_w0 (labelled only)"
PAPER = "ours_mse (paper objective)"
BASELINES = ("mean_teacher", "ict", "mmcml", "bcp", "mt_t2", "mt_t1ce")
# what a user would pick instead: labelled-only networks with rotation/zoom augmentation
# (one VNet on T2, DuetNet on both modalities), the one-modality Mean Teachers, the
# default's objective on T2 alone (two branches reading T2) and without modality branches
# (both branches reading both modalities)
REFERENCES = ("mt_t2", "mt_t1ce", "sup_spatial_t2", "sup_duet_spatial", "ours_t2", "ours_all")
# variants chosen on the choosing seeds, awaiting confirmation (docs/evaluation.md)
CANDIDATES = ("ours_aug", "ours_augmd")
ALIASES = {"ours_cpssoft": DEFAULT, "ours": DEFAULT, "ours_w0": CONTROL, "ours_mse": PAPER}
ABLATION = ("abl_base", "abl_mmf", "abl_mmf_mcml", DEFAULT, CONTROL)
PROTOCOL_NOTE = ("3-fold cross-validation over the 15 real BraTS cases (T1ce + T2, whole "
                 "tumour, z-scored), 2 or 4 labelled cases per fold (20 % / 40 % of a fold's "
                 "10 training cases), the rest unlabelled; `cpu_small` (2 mm, 48³ crops, "
                 "width 8), 1000 iterations, last checkpoint; metrics in the original 1 mm "
                 "geometry. Each seed draws other folds, labelled cases and training seed.")
REGENERATE = ("`duetseg experiment benchmarks/grids/GRID.yaml` for each grid `cv_*` "
              "(folds and seeds are in the grid), then "
              "`python benchmarks/archive_runs.py benchmarks/grids/cv_*.yaml` and "
              "`python benchmarks/results_page.py`")


def load_protocol_runs(results: Path,
                       protocols: tuple[str, ...] = PROTOCOLS) -> list[RunRecord]:
    """Every archived evaluated run of ``protocols``, names mapped by :data:`ALIASES`.

    Args:
        results: the results folder (``benchmarks/results``).
        protocols: archived folders under ``results``.

    Returns:
        The runs, in folder order.
    """
    dirs = [d for p in protocols for d in sorted((Path(results) / p).glob("*"))
            if RunDir(d).is_evaluated("test")]
    runs = collect_runs(dirs) if dirs else []
    for run in runs:
        run.name = ALIASES.get(run.name, run.name)
    return runs


def _dsc(records: list[dict], name: str, labeled: int) -> str:
    hit = [r for r in records if r["name"] == name and r["labeled"] == labeled]
    return f"{hit[0]['dsc_mean']:.1f}" if hit else "n/a"


def _gain(records: list[dict], name: str, labeled: int) -> str:
    hit = [r for r in records if r["name"] == name and r["labeled"] == labeled
           and r["output_label"].startswith("primary")]
    if not hit:
        return "n/a"
    g = hit[0]
    return (f"{g['gain_run']:+.1f} pp per run, 95 % CI [{g['ci_run_low']:+.1f}, "
            f"{g['ci_run_high']:+.1f}], {g['n_runs']} runs")


def accuracy_section(runs: list[RunRecord], n_resamples: int = N_RESAMPLES) -> str:
    """Section (a): Table 1, the gain over the control, the per-run table, other variants.

    Args:
        runs: :func:`load_protocol_runs`.
        n_resamples: bootstrap resamples of the gain table.

    Returns:
        Markdown, from the section's heading.
    """
    main_names = {DEFAULT, CONTROL, PAPER, *BASELINES, *REFERENCES, *CANDIDATES}
    main = [r for r in runs if r.name in main_names]
    others = [r for r in runs if r.name not in main_names and not r.name.startswith("abl_")]
    table1 = build_table1(main, reference=DEFAULT)
    gain = build_gain_table(main, CONTROL, n_resamples=n_resamples)
    labels = sorted({r.labeled for r in main})
    recs = table1.records
    lines = [f"With {k} labelled cases the default reaches {_dsc(recs, DEFAULT, k)} % Dice, "
             f"the labelled-only control {_dsc(recs, CONTROL, k)} % "
             f"({_gain(gain.records, DEFAULT, k)})." for k in labels]
    best = max((r for r in recs if r["name"] in BASELINES), key=lambda r: r["dsc_mean"],
               default=None)
    if best is not None:
        lines.append(f"The best other method is {best['name']} with {best['labeled']} "
                     f"labelled ({best['dsc_mean']:.1f} %).")
    parts = ["## Accuracy by method and labelled count", " ".join(lines),
             f"Regenerate: {REGENERATE}.", PROTOCOL_NOTE, table1.to_markdown().strip(),
             gain.to_markdown().strip()]
    mine = [n for n in (DEFAULT, *CANDIDATES) if any(r.name == n for r in main)]
    for reference in (n for n in REFERENCES if any(r.name == n for r in main)):
        versus = build_gain_table(main, reference, names=mine, n_resamples=n_resamples)
        versus.title = f"Gain over the reference {reference} (per-case paired Dice)"
        versus.notes = [f"The columns as in the gain over {CONTROL}, with {reference} as "
                        "the baseline."]
        parts.append(versus.to_markdown().strip())
    parts.append(build_run_table(main).to_markdown().strip())
    if others:
        variants = build_table1(others + [r for r in main if r.name == DEFAULT],
                                reference=DEFAULT)
        variants.title = "Variants measured (the same protocol)"
        parts.append(variants.to_markdown().strip())
    table = configurations_table(runs, DEFAULT)
    if table:
        parts += ["### What each configuration is", "The settings of each configuration's run "
                  "config that differ from the default's (`--set` overrides; `cache` names the "
                  "prepared data when it is another).", table]
    return "\n\n".join(parts) + "\n"


def ablation_section(runs: list[RunRecord]) -> str:
    """Section (b): the paper's Table 2 (MMF, MAE, MCML) with 2 labelled, seed 0.

    Args:
        runs: :func:`load_protocol_runs`.

    Returns:
        Markdown, from the section's heading.
    """
    chosen = [r for r in runs if r.name in ABLATION and r.labeled == 2 and r.seed == 0]
    table = build_table2(chosen)
    parts = ["## Ablation of the components (paper Table 2)"]
    if table is None:
        return parts[0] + "\n\nNo archived ablation runs.\n"
    by_flags = {(r["mmf"], r["mae"], r["mcml"]): r for r in table.records}
    branches = [k.removeprefix("dsc_mean_") for k in table.records[0] if
                k.startswith("dsc_mean_")]

    def dice(flags: tuple[bool, bool, bool]) -> str:
        rec = by_flags.get(flags)
        return "n/a" if rec is None else " / ".join(f"{rec[f'dsc_mean_{b}']:.1f}"
                                                     for b in branches)

    mods = " / ".join(table.records[0][f"modality_{b}"] for b in branches)
    reading = (f"Per-branch Dice ({mods}) goes from {dice((False, False, False))} % with "
               f"none of MMF, MAE and MCML to {dice((True, True, False))} % with MMF + MAE "
               f"and {dice((True, True, True))} % with all three (the default).")
    parts += [reading, f"Regenerate: {REGENERATE}. Rows: `abl_*` runs, the labelled-only "
              "control (MMF + MAE) and the default (all three), 3 folds of seed 0.",
              table.to_markdown().strip()]
    return "\n\n".join(parts) + "\n"


def missing_section(runs: list[RunRecord], n_resamples: int = N_RESAMPLES) -> str:
    """Section (c): Dice with a modality missing, from the runs' missing-input records.

    Args:
        runs: :func:`load_protocol_runs`.
        n_resamples: bootstrap resamples of the paired intervals.

    Returns:
        Markdown, from the section's heading.
    """
    import json

    entries = [(r.name, r.seed, json.loads(RunDir(r.run_dir).missing_inputs_file.read_text()))
               for r in runs if RunDir(r.run_dir).missing_inputs_file.is_file()]
    parts = ["## Accuracy with a modality missing at prediction"]
    if not entries:
        return parts[0] + "\n\nNo missing-modality records.\n"
    pooled = pool_missing(sorted(entries, key=lambda e: (len(e[2]) == 1, e[0], e[1])))
    rows = [[name, inputs, f"{sum(v.values()) / len(v):.2f}", str(len(v))]
            for name, per_inputs in pooled.items() for inputs, v in per_inputs.items()]
    diffs = paired_differences(pooled, n_resamples=n_resamples)
    reading = " ".join(f"{d.name} on {d.inputs} alone: {d.mean:+.1f} points against "
                       f"{d.reference} (95 % CI [{d.low:+.1f}, {d.high:+.1f}], {d.n} cases)."
                       for d in diffs if d.inputs in pooled[d.reference]
                       and len(pooled[d.reference]) == 1)
    parts += [reading, "Regenerate: train the grids `cv_L2_missing`, `cv_L2_t2` and "
              "`cv_L2_t1ce`, then `python benchmarks/missing_modality.py "
              "benchmarks/grids/cv_L2_missing.yaml benchmarks/grids/cv_L2_t2.yaml "
              "benchmarks/grids/cv_L2_t1ce.yaml` (it records each run's "
              "`eval/missing_inputs.json` in its archived copy) and "
              "`python benchmarks/results_page.py`.",
              "Absent inputs are zero-filled as `duetseg predict` does and the absent "
              "branch's output is dropped; Dice of the primary output in the 2 mm cache "
              "geometry, pooled over folds. Single-modality networks are Mean Teachers "
              "trained on that modality alone.",
              markdown_table(["configuration", "inputs", "mean Dice %", "n cases"], rows),
              markdown_table(["paired difference", "inputs", "mean [95 % CI]", "n cases"],
                             [[f"{d.name} − {d.reference}", d.inputs,
                               f"{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]", str(d.n)]
                              for d in diffs])]
    return "\n\n".join(parts) + "\n"
