"""Per-run table: each run's mean Dice, so a configuration's weakest runs are in plain view.

A configuration's mean over its runs can hide runs that collapsed; the run (seed x fold),
not the case, is the unit a user repeats. One row per configuration and labelled count:
the runs' mean Dice (primary output, mean over the run's test cases), their spread, the
weakest run, how many fall below a floor, and every run's value by seed and fold.
"""

from __future__ import annotations

import math

import numpy as np

from duetseg.reporting.collect import RunRecord
from duetseg.reporting.tables import Table, count_labels, order_methods, table1_runs

__all__ = ["COLLAPSE_FLOOR", "run_means", "build_run_table"]

# a run whose mean Dice is below this (percent) counts as collapsed
COLLAPSE_FLOOR = 40.0


def run_means(run: RunRecord, class_id: int | None = None) -> float:
    """Mean Dice (percent) of the run's primary output over its cases with a finite value."""
    values = [v for v in run.case_values("dice", None, class_id).values() if math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def _run_tag(run: RunRecord) -> str:
    return f"s{run.seed}" + ("" if run.fold is None else f"f{run.fold}")


def build_run_table(runs: list[RunRecord], class_id: int | None = None,
                    floor: float = COLLAPSE_FLOOR) -> Table:
    """The per-run table of the runs of Table 1.

    Args:
        runs: evaluated runs.
        class_id: class; None averages the foreground classes per case.
        floor: Dice (percent) below which a run counts as collapsed.

    Returns:
        One row per (configuration, labelled count): runs, mean and SD over runs, the
        weakest run, runs below ``floor`` and each run's mean Dice (``s<seed>f<fold>``).

    Raises:
        ConfigError: two runs collide (see :func:`duetseg.reporting.tables.table1_runs`).
    """
    selected = table1_runs(runs)
    labels = count_labels(selected)
    groups: dict[tuple[str, int], list[RunRecord]] = {}
    for run in selected:
        groups.setdefault((run.name, run.labeled), []).append(run)
    names = order_methods(list(dict.fromkeys(r.name for r in selected)))
    headers = ["Configuration", "Labeled", "runs", "mean of runs DSC (%)", "SD over runs",
               "weakest run", f"runs < {floor:g} %", "each run (seed, fold): DSC (%)"]
    rows, records = [], []
    for labeled in sorted(labels):
        for name in names:
            group = sorted(groups.get((name, labeled), []), key=lambda r: _run_tag(r))
            if not group:
                continue
            means = np.array([run_means(r, class_id) for r in group])
            finite = means[np.isfinite(means)]
            sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
            low = float(finite.min()) if finite.size else math.nan
            below = int((finite < floor).sum())
            each = " · ".join(f"{_run_tag(r)} {m:.1f}" for r, m in zip(group, means))
            rows.append([name, labels[labeled], str(len(group)),
                         f"{finite.mean():.2f}" if finite.size else "n/a",
                         "n/a" if math.isnan(sd) else f"{sd:.2f}",
                         "n/a" if math.isnan(low) else f"{low:.1f}", str(below), each])
            records += [{"name": name, "labeled": labeled, "seed": r.seed,
                         "fold": r.fold, "dice_mean": float(m),
                         "run_dir": str(r.run_dir)} for r, m in zip(group, means)]
    notes = ["Each run's DSC is the mean over its test cases of the primary output; the "
             "mean and SD are over runs (seed x fold: each fold has other test cases, so the "
             f"SD includes the test sets' difficulty). A run below {floor:g} % counts as "
             "collapsed.", "The CSV has one record per run."]
    return Table("Per-run Dice", headers, rows, records, notes)
