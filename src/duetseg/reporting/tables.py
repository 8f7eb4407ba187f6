"""Table 1 (methods x labelled fraction) and Table 2 (ablation) of the paper, from runs.

Numbers are over the cases of the evaluated split, for one output and the foreground
classes (averaged per case when there are several). With one seed a cell is the mean ± std
over cases (population std, as in ``summary.json``). With several seeds it is the mean of the
per-seed means ± the mean of the per-seed stds, and the spread over seeds (sample std,
ddof = 1, of the per-seed means) goes to a separate column.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from duetseg.errors import ConfigError
from duetseg.reporting.collect import RunRecord
from duetseg.reporting.stats import REFERENCE_METHOD, WilcoxonResult, compare_to_reference

__all__ = ["Aggregate", "Table", "aggregate", "order_methods", "table1_runs", "table2_runs",
           "build_table1", "build_table2", "group_label"]

# Baselines in the paper's order (names as registered; unknown names follow alphabetically).
_PREFERRED = ["supervised", "mean_teacher", "ict", "entropy_min", "urpc",
              "mlrpl", "mmcml", "cmc"]
_DUETNET_METHODS = ("ours", "supervised")


@dataclass
class Aggregate:
    """A metric over cases (and seeds) for one group of runs."""

    mean: float
    std: float
    seed_sd: float
    n_seeds: int
    n_cases: int
    nan_count: int

    def cell(self) -> str:
        """``mean ± std`` with two decimals, ``n/a`` when undefined."""
        if not math.isfinite(self.mean):
            return "n/a"
        return f"{self.mean:.2f} ± {self.std:.2f}"


@dataclass
class Table:
    """A rendered table: display rows (strings) plus numeric records for CSV."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    records: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown: title, table, notes."""
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        out = [f"### {self.title}", "", line(self.headers),
               "|" + "|".join("---" for _ in self.headers) + "|"]
        out.extend(line(r) for r in self.rows)
        if self.notes:
            out.append("")
            out.extend(f"- {n}" for n in self.notes)
        return "\n".join(out) + "\n"

    def to_csv(self) -> str:
        """The numeric records as CSV (NaN as empty field)."""
        if not self.records:
            return ""
        keys = list(dict.fromkeys(k for r in self.records for k in r))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(keys)
        for rec in self.records:
            writer.writerow([_csv(rec.get(k)) for k in keys])
        return buf.getvalue()


def _csv(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def aggregate(runs: list[RunRecord], metric: str, output: str | None = None,
              class_id: int | None = None) -> Aggregate:
    """Aggregate one metric over cases and seeds (see the module docstring).

    Args:
        runs: runs of one group (one per seed).
        metric: ``dice``, ``asd``, ...
        output: output name; None = each run's primary output.
        class_id: class; None averages the foreground classes per case.

    Returns:
        The aggregate; NaN values (undefined metrics) are left out and counted.
    """
    means, stds, n_cases, nans = [], [], 0, 0
    for run in runs:
        vals = np.asarray(list(run.case_values(metric, output, class_id).values()), float)
        finite = vals[np.isfinite(vals)]
        nans += int(vals.size - finite.size)
        if finite.size:
            means.append(float(finite.mean()))
            stds.append(float(finite.std()))
            n_cases += int(finite.size)
    if not means:
        return Aggregate(math.nan, math.nan, math.nan, 0, 0, nans)
    seed_sd = float(np.std(means, ddof=1)) if len(means) > 1 else math.nan
    return Aggregate(float(np.mean(means)), float(np.mean(stds)), seed_sd, len(means),
                     n_cases, nans)


def order_methods(methods: list[str]) -> list[str]:
    """Baselines (paper order, then alphabetical) first, ``ours`` last."""
    unique = list(dict.fromkeys(methods))
    known = [m for m in _PREFERRED if m in unique]
    rest = sorted(m for m in unique if m not in _PREFERRED and m != REFERENCE_METHOD)
    return known + rest + ([REFERENCE_METHOD] if REFERENCE_METHOD in unique else [])


def _is_ablation_variant(run: RunRecord) -> bool:
    if run.method not in _DUETNET_METHODS or not run.is_dual_branch:
        return False
    full = run.mmf and run.mae and (run.mcml or run.method != REFERENCE_METHOD)
    return not full


def table1_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """Runs for Table 1: every run except DuetNet ablation variants (a flag switched off).

    Raises:
        ConfigError: two runs with the same method, labelled count and seed.
    """
    selected = [r for r in runs if not _is_ablation_variant(r)]
    seen: dict[tuple[str, int, int], RunRecord] = {}
    for run in selected:
        key = (run.method, run.labeled, run.seed)
        if key in seen:
            raise ConfigError(f"runs {seen[key].run_dir} and {run.run_dir} both are method "
                              f"{run.method!r} with {run.labeled} labelled cases and seed "
                              f"{run.seed}; pass only one of them")
        seen[key] = run
    return selected


def group_label(runs: list[RunRecord], labeled: int) -> str:
    """Column label of a labelled count, e.g. ``5%`` (the configured spec when it is one)."""
    members = [r for r in runs if r.labeled == labeled]
    specs = {r.labeled_spec for r in members}
    if len(specs) == 1 and next(iter(specs)).endswith("%"):
        return next(iter(specs))
    return f"{members[0].labeled_percent:.3g}%" if members else str(labeled)


def _p_cell(result: WilcoxonResult | None) -> str:
    if result is None:
        return "—"
    if math.isnan(result.p):
        return "n/a"
    return f"{result.p:.3g}"


def build_table1(runs: list[RunRecord], class_id: int | None = None) -> Table:
    """Table 1: DSC and ASD of each method at each labelled count, with Wilcoxon p vs ours.

    Args:
        runs: all runs (ablation variants are left out, see :func:`table1_runs`).
        class_id: class; None averages the foreground classes.

    Returns:
        The table (rows = methods, columns per labelled count).
    """
    selected = table1_runs(runs)
    tests = compare_to_reference(selected, class_id)
    counts = sorted({r.labeled for r in selected})
    labels = {c: group_label(selected, c) for c in counts}
    if len(set(labels.values())) < len(labels):
        labels = {c: f"{labels[c]} (n={c})" for c in counts}
    multi_seed = any(len([r for r in selected if (r.method, r.labeled) == (m, c)]) > 1
                     for m in {r.method for r in selected} for c in counts)
    headers = ["Method"]
    for c in counts:
        headers += [f"{labels[c]} DSC (%)", f"{labels[c]} ASD (mm)"]
        if multi_seed:
            headers.append(f"{labels[c]} seed SD (DSC / ASD)")
        headers.append(f"{labels[c]} p (vs {REFERENCE_METHOD})")
    rows, records, notes = [], [], []
    for method in order_methods([r.method for r in selected]):
        row = [method]
        for c in counts:
            members = [r for r in selected if (r.method, r.labeled) == (method, c)]
            if not members:
                row += ["—"] * (4 if multi_seed else 3)
                continue
            dsc, asd = aggregate(members, "dice", None, class_id), aggregate(
                members, "asd", None, class_id)
            test = tests.get((method, c))
            row += [dsc.cell(), asd.cell()]
            if multi_seed:
                row.append("—" if dsc.n_seeds < 2 else
                           f"± {dsc.seed_sd:.2f} / ± {asd.seed_sd:.2f} ({dsc.n_seeds} seeds)")
            row.append(_p_cell(test))
            if test is not None and test.note:
                notes.append(f"{method} at {labels[c]}: p n/a, {test.note}")
            if asd.nan_count:
                notes.append(f"{method} at {labels[c]}: ASD undefined (one mask empty) for "
                             f"{asd.nan_count} case(s), left out")
            records.append({
                "method": method, "labeled": c, "labeled_percent": members[0].labeled_percent,
                "n_seeds": len(members), "seeds": " ".join(str(r.seed) for r in members),
                "n_cases": dsc.n_cases, "dsc_mean": dsc.mean, "dsc_std": dsc.std,
                "dsc_seed_sd": dsc.seed_sd, "asd_mean": asd.mean, "asd_std": asd.std,
                "asd_seed_sd": asd.seed_sd, "asd_nan_count": asd.nan_count,
                "p_wilcoxon": None if test is None else test.p,
                "n_pairs": None if test is None else test.n,
                "note": "" if test is None else test.note,
            })
        rows.append(row)
    notes.insert(0, "p: paired two-sided Wilcoxon signed-rank test of per-case Dice against "
                    f"{REFERENCE_METHOD} at the same labelled count (pairs matched by seed "
                    "and case).")
    if multi_seed:
        notes.insert(1, "Several seeds: mean of per-seed means ± mean of per-seed stds; "
                        "seed SD = sample std of the per-seed means.")
    return Table("Table 1: comparison with other methods", headers, rows, records, notes)


def table2_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """Dual-branch ``ours``/``supervised`` runs; one per (labelled, flags, seed), ours first."""
    chosen: dict[tuple, RunRecord] = {}
    for run in sorted(runs, key=lambda r: r.method != REFERENCE_METHOD):
        if run.method in _DUETNET_METHODS and run.is_dual_branch:
            chosen.setdefault((run.labeled, run.mmf, run.mae, run.mcml, run.seed), run)
    return list(chosen.values())


def _flag_key(flags: tuple[bool, bool, bool]) -> tuple[int, int, int]:
    mmf, mae, mcml = flags
    return (mmf + mae + mcml, int(mcml), int(not mmf))


def build_table2(runs: list[RunRecord], class_id: int | None = None) -> Table | None:
    """Table 2: per-branch DSC and ASD for each combination of MMF / MAE / MCML.

    Args:
        runs: all runs; dual-branch ``ours`` and ``supervised`` runs are used (on the same
            flags, labelled count and seed, ``ours`` wins).
        class_id: class; None averages the foreground classes.

    Returns:
        The table, or None when fewer than two flag combinations are present.
    """
    selected = table2_runs(runs)
    if len({(r.mmf, r.mae, r.mcml) for r in selected}) < 2:
        return None
    branches = [o for o in selected[0].outputs if o.startswith("branch_")]
    mods = {b: selected[0].output_modality(b) for b in branches}
    headers = ["Labeled", "Baseline", "MMF", "MAE", "MCML"]
    headers += [f"DSC (%) {mods[b]}" for b in branches]
    headers += [f"ASD (mm) {mods[b]}" for b in branches] + ["Seeds"]
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
                               "n_seeds": len(members)}
        for b in branches:
            rec.update({f"modality_{b}": mods[b], f"dsc_mean_{b}": dsc[b].mean,
                        f"dsc_std_{b}": dsc[b].std, f"dsc_seed_sd_{b}": dsc[b].seed_sd,
                        f"asd_mean_{b}": asd[b].mean, f"asd_std_{b}": asd[b].std,
                        f"asd_seed_sd_{b}": asd[b].seed_sd})
        records.append(rec)
    notes = ["Rows without MCML come from 'ours' with method.mcml false or from 'supervised' "
             "(DuetNet); each branch output is scored on its own."]
    return Table("Table 2: ablation (per-branch outputs)", headers, rows, records, notes)
