"""Table 1 (configurations x labelled fraction) and Table 2 (ablation) of the paper, from runs.

Numbers are over the cases of the evaluated split, for one output and the foreground
classes (averaged per case when there are several). With one run a cell is the mean ± std
over cases (population std, as in ``summary.json``). With several runs of one configuration
(seeds and/or cross-validation folds) it is the mean of the per-run means ± the mean of the
per-run stds, and the spread over runs (sample std, ddof = 1, of the per-run means) goes to a
separate column. Configurations are told apart by :attr:`RunRecord.name`.
"""

from __future__ import annotations

import math
from typing import Any

from duetseg.errors import ConfigError
from duetseg.reporting.collect import RunRecord
from duetseg.reporting.roles import (
    ablation_switches,
    is_proposed,
    methods_with_switch,
    reference_method,
    table_order,
)
from duetseg.reporting.stats import WilcoxonResult, compare_to_reference
from duetseg.reporting.tabular import Aggregate, Table, aggregate

__all__ = ["Aggregate", "Table", "aggregate", "order_methods", "table1_runs", "table2_runs",
           "build_table1", "build_table2", "group_label", "count_labels", "runs_phrase"]


def order_methods(methods: list[str], reference: str | None = None) -> list[str]:
    """Baselines (the methods' table order, then alphabetical) first, ``reference`` last.

    Args:
        methods: configuration names (repeats allowed).
        reference: the name put last; None = the proposed method
            (:func:`~duetseg.reporting.roles.reference_method`).

    Returns:
        The unique names in display order.
    """
    reference = reference_method() if reference is None else reference
    preferred = table_order()
    unique = list(dict.fromkeys(methods))
    known = [m for m in preferred if m in unique and m != reference]
    rest = sorted(m for m in unique if m not in preferred and m != reference)
    return known + rest + ([reference] if reference in unique else [])


def _has_ablation(run: RunRecord) -> bool:
    """A dual-branch run of a method with ablation switches."""
    return bool(ablation_switches(run.method)) and run.is_dual_branch


def _is_ablation_variant(run: RunRecord) -> bool:
    """A run with one of its method's ablation switches off (e.g. MAE), unless it has a name
    of its own (``config.name`` other than the method): a named run is its own
    configuration."""
    return run.name == run.method and _has_ablation(run) and bool(run.switches_off)


def table1_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """Runs for Table 1: every run except unnamed ablation variants (a switch off).

    The K folds of a cross-validation (and the seeds) of one configuration are all kept.

    Raises:
        ConfigError: two runs with the same name, labelled count, seed and split.
    """
    selected = [r for r in runs if not _is_ablation_variant(r)]
    seen: dict[tuple[str, int, int, str], RunRecord] = {}
    for run in selected:
        key = (run.name, run.labeled, run.seed, run.split_key)
        if key in seen:
            fold = "" if run.fold is None else f", fold {run.fold}"
            raise ConfigError(f"runs {seen[key].run_dir} and {run.run_dir} both are "
                              f"configuration {run.name!r} with {run.labeled} labelled cases, "
                              f"seed {run.seed} and the same split (split key "
                              f"{run.split_key}{fold}); pass only one of them, or give one a "
                              "different 'name' in its config")
        seen[key] = run
    return selected


def runs_phrase(runs: list[RunRecord]) -> str:
    """How a group of runs varies, e.g. ``2 seeds``, ``5 folds``, ``6 runs (2 seeds × 3
    folds)`` (repeated cross-validation: each seed its own partition), ``4 runs (2 seeds ×
    2 splits)`` (every seed on the same splits) or ``3 runs (2 seeds, 3 splits)`` (an
    incomplete grid; splits = distinct :attr:`RunRecord.split_key`)."""
    seeds = {r.seed for r in runs}
    splits = len({r.split_key for r in runs})
    folds = all(r.fold is not None for r in runs)
    if splits == 1:
        return f"{len(runs)} seed{'s' if len(runs) != 1 else ''}"
    if len(seeds) == 1:
        return f"{len(runs)} {'folds' if folds else 'splits'}"
    per_seed = {len({r.fold for r in runs if r.seed == s}) for s in seeds}
    if folds and len(per_seed) == 1 and len(runs) == len(seeds) * min(per_seed):
        return f"{len(runs)} runs ({len(seeds)} seeds × {min(per_seed)} folds)"
    joiner = " ×" if len(runs) == len(seeds) * splits else ","
    return f"{len(runs)} runs ({len(seeds)} seeds{joiner} {splits} splits)"


def group_label(runs: list[RunRecord], labeled: int) -> str:
    """Column label of a labelled count, e.g. ``5%`` (the configured spec when it is one)."""
    members = [r for r in runs if r.labeled == labeled]
    specs = {r.labeled_spec for r in members}
    if len(specs) == 1 and next(iter(specs)).endswith("%"):
        return next(iter(specs))
    return f"{members[0].labeled_percent:.3g}%" if members else str(labeled)


def count_labels(runs: list[RunRecord]) -> dict[int, str]:
    """Column label of every labelled count of ``runs`` (see :func:`group_label`), with
    `` (n=N)`` appended to all of them when two counts would get the same label."""
    counts = sorted({r.labeled for r in runs})
    labels = {c: group_label(runs, c) for c in counts}
    if len(set(labels.values())) < len(labels):
        labels = {c: f"{labels[c]} (n={c})" for c in counts}
    return labels


def _p_cell(result: WilcoxonResult | None) -> str:
    if result is None:
        return "—"
    if math.isnan(result.p):
        return "n/a"
    return f"{result.p:.3g}"


def build_table1(runs: list[RunRecord], class_id: int | None = None,
                 reference: str | None = None) -> Table:
    """Table 1: DSC and ASD of each configuration at each labelled count, with Wilcoxon p.

    Args:
        runs: all runs (ablation variants are left out, see :func:`table1_runs`); the seeds
            and folds of one configuration (same :attr:`RunRecord.name`) make one row.
        class_id: class; None averages the foreground classes.
        reference: the configuration every other one is tested against (p column); None =
            the proposed method.

    Returns:
        The table (rows = configurations, columns per labelled count).

    Raises:
        ConfigError: two runs collide (see :func:`table1_runs`).
    """
    reference = reference_method() if reference is None else reference
    selected = table1_runs(runs)
    tests = compare_to_reference(selected, class_id, reference)
    labels = count_labels(selected)
    counts = list(labels)
    groups: dict[tuple[str, int], list[RunRecord]] = {}
    for run in selected:
        groups.setdefault((run.name, run.labeled), []).append(run)
    multi_run = any(len(g) > 1 for g in groups.values())
    seeds_only = all(len({r.split_key for r in g}) == 1 for g in groups.values())
    sd_word = "seed" if seeds_only else "run"
    headers = ["Method"]
    for c in counts:
        headers += [f"{labels[c]} DSC (%)", f"{labels[c]} ASD (mm)"]
        if multi_run:
            headers.append(f"{labels[c]} {sd_word} SD (DSC / ASD)")
        headers.append(f"{labels[c]} p (vs {reference})")
    rows, records, notes = [], [], []
    for name in order_methods([r.name for r in selected], reference):
        row = [name]
        for c in counts:
            members = groups.get((name, c), [])
            if not members:
                row += ["—"] * (4 if multi_run else 3)
                continue
            dsc, asd = aggregate(members, "dice", None, class_id), aggregate(
                members, "asd", None, class_id)
            test = tests.get((name, c))
            row += [dsc.cell(), asd.cell()]
            if multi_run:
                row.append("—" if dsc.n_runs < 2 else
                           f"± {dsc.run_sd:.2f} / ± {asd.run_sd:.2f} ({runs_phrase(members)})")
            row.append(_p_cell(test))
            if test is not None and test.note:
                notes.append(f"{name} at {labels[c]}: p n/a, {test.note}")
            if asd.nan_count:
                notes.append(f"{name} at {labels[c]}: ASD undefined (one mask empty) for "
                             f"{asd.nan_count} case(s), left out")
            records.append({
                "name": name, "method": " ".join(sorted({r.method for r in members})),
                "labeled": c, "labeled_percent": members[0].labeled_percent,
                "n_runs": len(members), "n_seeds": len({r.seed for r in members}),
                "n_splits": len({r.split_key for r in members}),
                "seeds": " ".join(str(r.seed) for r in members),
                "folds": " ".join(str(r.fold) for r in members if r.fold is not None),
                "n_cases": dsc.n_cases, "dsc_mean": dsc.mean, "dsc_std": dsc.std,
                "dsc_seed_sd": dsc.run_sd, "asd_mean": asd.mean, "asd_std": asd.std,
                "asd_seed_sd": asd.run_sd, "asd_nan_count": asd.nan_count,
                "p_wilcoxon": None if test is None else test.p,
                "n_pairs": None if test is None else test.n,
                "note": "" if test is None else test.note,
            })
        rows.append(row)
    notes.insert(0, "p: paired two-sided Wilcoxon signed-rank test of per-case Dice against "
                    f"{reference} at the same labelled count (pairs matched by seed, split "
                    "(fold) and case).")
    if multi_run and seeds_only:
        notes.insert(1, "Several seeds: mean of per-seed means ± mean of per-seed stds; "
                        "seed SD = sample std of the per-seed means.")
    elif multi_run:
        notes.insert(1, "Several runs (seeds and/or cross-validation folds): mean of per-run "
                        "means ± mean of per-run stds; run SD = sample std of the per-run "
                        "means (across folds it includes the variation between test sets).")
    return Table("Table 1: comparison with other methods", headers, rows, records, notes)


def table2_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """Dual-branch runs of methods with ablation switches; one per (labelled, flags, seed,
    split).

    On a tie, the proposed method wins over the others (e.g. ``ours`` over ``supervised``)
    and a run named after its method over a named configuration (e.g. ``ours`` over
    ``ours_w0``).
    """
    chosen: dict[tuple, RunRecord] = {}
    for run in sorted(runs, key=lambda r: (not is_proposed(r.method), r.name != r.method)):
        if _has_ablation(run):
            key = (run.labeled, run.mmf, run.mae, run.mcml, run.seed, run.split_key)
            chosen.setdefault(key, run)
    return list(chosen.values())


def _table2_note() -> str:
    """Where the rows without MCML come from: the methods with and without that switch."""
    with_mcml = " or ".join(f"'{m}'" for m in methods_with_switch("mcml"))
    without = " or ".join(f"'{m}'" for m in methods_with_switch("mcml", present=False))
    return (f"Rows without MCML come from {with_mcml} with method.mcml false or unsupervised "
            f"weight 0 (same batches), or from {without} (DuetNet); each branch output is "
            "scored on its own.")


def _flag_key(flags: tuple[bool, bool, bool]) -> tuple[int, int, int]:
    mmf, mae, mcml = flags
    return (mmf + mae + mcml, int(mcml), int(not mmf))


def build_table2(runs: list[RunRecord], class_id: int | None = None) -> Table | None:
    """Table 2: per-branch DSC and ASD for each combination of MMF / MAE / MCML.

    Args:
        runs: all runs; dual-branch runs of methods with ablation switches are used (see
            :func:`table2_runs` for which one wins on the same flags, count, seed and split).
        class_id: class; None averages the foreground classes.

    Returns:
        The table, or None when fewer than two flag combinations are present.
    """
    selected = table2_runs(runs)
    if len({(r.mmf, r.mae, r.mcml) for r in selected}) < 2:
        return None
    branches = selected[0].branch_outputs
    mods = {b: selected[0].output_modality(b) for b in branches}
    headers = ["Labeled", "Baseline", "MMF", "MAE", "MCML"]
    headers += [f"DSC (%) {mods[b]}" for b in branches]
    headers += [f"ASD (mm) {mods[b]}" for b in branches] + ["Runs"]
    groups: dict[tuple[int, tuple[bool, bool, bool]], list[RunRecord]] = {}
    for run in selected:
        groups.setdefault((run.labeled, (run.mmf, run.mae, run.mcml)), []).append(run)
    rows, records = [], []
    mark = {True: "✓", False: "✗"}
    for labeled, flags in sorted(groups, key=lambda k: (k[0], _flag_key(k[1]))):
        members = groups[(labeled, flags)]
        dsc = {b: aggregate(members, "dice", b, class_id) for b in branches}
        asd = {b: aggregate(members, "asd", b, class_id) for b in branches}
        rows.append([group_label(selected, labeled), "✓", *(mark[f] for f in flags),
                     *(dsc[b].cell() for b in branches), *(asd[b].cell() for b in branches),
                     str(len(members))])
        rec: dict[str, Any] = {"labeled": labeled, "labeled_percent": members[0].labeled_percent,
                               "mmf": flags[0], "mae": flags[1], "mcml": flags[2],
                               "methods": " ".join(sorted({r.method for r in members})),
                               "names": " ".join(sorted({r.name for r in members})),
                               "n_runs": len(members),
                               "n_seeds": len({r.seed for r in members})}
        for b in branches:
            rec.update({f"modality_{b}": mods[b], f"dsc_mean_{b}": dsc[b].mean,
                        f"dsc_std_{b}": dsc[b].std, f"dsc_seed_sd_{b}": dsc[b].run_sd,
                        f"asd_mean_{b}": asd[b].mean, f"asd_std_{b}": asd[b].std,
                        f"asd_seed_sd_{b}": asd[b].run_sd})
        records.append(rec)
    notes = [_table2_note()]
    return Table("Table 2: ablation (per-branch outputs)", headers, rows, records, notes)
