"""Tabular building blocks of the report: the rendered :class:`Table` and metric aggregates.

See :mod:`duetseg.reporting.tables` for how the aggregates are defined (mean of per-run
means ± mean of per-run stds, sample std of the per-run means as the spread over runs).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from duetseg.reporting.collect import RunRecord

__all__ = ["Aggregate", "Table", "aggregate"]


@dataclass
class Aggregate:
    """A metric over cases (and runs: seeds, folds) for one group of runs.

    Attributes:
        mean: mean of the per-run means.
        std: mean of the per-run stds over cases.
        run_sd: sample std of the per-run means (NaN with one run).
        n_runs: runs with at least one finite value.
        n_cases: finite values in all.
        nan_count: NaN values left out.
    """

    mean: float
    std: float
    run_sd: float
    n_runs: int
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

    def to_markdown(self, level: int = 3) -> str:
        """GitHub-flavoured Markdown: title (a heading of ``level``), table, notes."""
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        out = [f"{'#' * level} {self.title}", "", line(self.headers),
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
    """Aggregate one metric over cases and runs (see the module docstring).

    Args:
        runs: runs of one group (one per seed and split).
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
    run_sd = float(np.std(means, ddof=1)) if len(means) > 1 else math.nan
    return Aggregate(float(np.mean(means)), float(np.mean(stds)), run_sd, len(means),
                     n_cases, nans)
