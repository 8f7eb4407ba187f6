"""``duetseg report``: tables, statistics, figures and a self-contained HTML page from runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from duetseg.atomic import save_text
from duetseg.reporting.collect import collect_runs
from duetseg.reporting.figures import plot_curves, plot_qualitative, qualitative_runs
from duetseg.reporting.gain import build_gain_table, default_baseline
from duetseg.reporting.html import render_report, stats_html
from duetseg.reporting.roles import reference_method
from duetseg.reporting.run_table import build_run_table
from duetseg.reporting.stats import compare_to_reference
from duetseg.reporting.tables import (
    Table,
    build_table1,
    build_table2,
    count_labels,
    table1_runs,
)

__all__ = ["ReportResult", "write_report", "make_report"]


@dataclass
class ReportResult:
    """What :func:`write_report` wrote.

    Attributes:
        index: path of ``index.html``.
        table1: Table 1.
        table2: Table 2, or None without ablation runs.
        gain: the gain-over-a-baseline table, or None without a baseline.
    """

    index: Path
    table1: Table
    table2: Table | None
    gain: Table | None


def _save_table(table: Table | None, out_dir: Path, stem: str) -> None:
    """Write ``<stem>.md`` and ``<stem>.csv``; without a table remove stale ones."""
    md, csv = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    if table is None:
        md.unlink(missing_ok=True)
        csv.unlink(missing_ok=True)
        return
    save_text(table.to_markdown(), md)
    save_text(table.to_csv(), csv)


def write_report(run_dirs: list[Path], out_dir: Path, split: str = "test",
                 class_id: int | None = None, max_cases: int = 3,
                 baseline: str | None = None,
                 reference: str | None = None) -> ReportResult:
    """Write the report of evaluated runs and return its tables; see :func:`make_report`.

    Args:
        run_dirs: run directories, each evaluated on ``split`` (``duetseg evaluate``).
        out_dir: output folder (created).
        split: the evaluated split.
        class_id: class to report; None averages the foreground classes per case.
        max_cases: rows of the qualitative figure.
        baseline: configuration name for the gain table; None = the default baseline
            (``supervised``, :func:`~duetseg.reporting.gain.default_baseline`) when a
            configuration has that name, else no gain table.
        reference: configuration every other one is tested against in Table 1; None = the
            proposed method (``ours``, :func:`~duetseg.reporting.roles.reference_method`).

    Returns:
        The path of ``index.html`` and the tables.

    Raises:
        ConfigError: a folder is not an evaluated run, two runs collide in Table 1, or
            ``baseline`` is not the name of a configuration.
    """
    reference = reference_method() if reference is None else reference
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = collect_runs([Path(d) for d in run_dirs], split)
    table1 = build_table1(runs, class_id, reference)
    _save_table(table1, out_dir, "table1")
    table2 = build_table2(runs, class_id)
    _save_table(table2, out_dir, "table2")
    baseline = baseline if baseline is not None else default_baseline(runs)
    gain = None if baseline is None else build_gain_table(runs, baseline, class_id)
    _save_table(gain, out_dir, "gain")
    _save_table(build_run_table(runs, class_id), out_dir, "runs")
    t1_runs = table1_runs(runs)
    tests = compare_to_reference(t1_runs, class_id, reference)
    curves = plot_curves(runs, out_dir / "curves.png")
    qualitative = plot_qualitative(qualitative_runs(t1_runs, reference),
                                   out_dir / "qualitative.png", max_cases=max_cases)
    note = "" if qualitative is not None else (
        "No qualitative figure: no test case has a saved prediction in every shown run "
        "and a reference label and image in the cache.")
    page = render_report(
        f"duetseg report ({split} split, {len(runs)} runs)", table1, table2,
        stats_html(tests, count_labels(t1_runs), reference), curves, qualitative,
        [f"{r.label}: {r.run_dir} (primary output {r.primary_output}, split {r.split_key})"
         for r in runs], note, gain, reference)
    index = out_dir / "index.html"
    save_text(page, index)
    return ReportResult(index, table1, table2, gain)


def make_report(run_dirs: list[Path], out_dir: Path, split: str = "test",
                class_id: int | None = None, max_cases: int = 3,
                baseline: str | None = None, reference: str | None = None) -> Path:
    """Write the report of evaluated runs.

    Writes into ``out_dir``: ``table1.md``, ``table1.csv``, ``table2.md`` and ``table2.csv``
    (only with ablation runs), ``gain.md`` and ``gain.csv`` (only with a baseline),
    ``runs.md`` and ``runs.csv`` (each run's mean Dice,
    :func:`duetseg.reporting.run_table.build_run_table`),
    ``curves.png``, ``qualitative.png`` (only when predictions, references and images are
    available) and ``index.html`` (self-contained). Stale ``table2``/``gain`` files of an
    earlier report in ``out_dir`` are removed when the table is not made.

    Args:
        run_dirs: run directories, each evaluated on ``split`` (``duetseg evaluate``).
        out_dir: output folder (created).
        split: the evaluated split.
        class_id: class to report; None averages the foreground classes per case.
        max_cases: rows of the qualitative figure.
        baseline: configuration name for the gain table (see
            :func:`duetseg.reporting.gain.build_gain_table`); None = the default baseline
            (``supervised``) when a configuration has that name, else no gain table.
        reference: configuration every other one is tested against in Table 1; None = the
            proposed method (``ours``).

    Returns:
        The path of ``index.html``.

    Raises:
        ConfigError: a folder is not an evaluated run, two runs collide in Table 1, or
            ``baseline`` is not the name of a configuration.
    """
    return write_report(run_dirs, out_dir, split, class_id, max_cases, baseline,
                        reference).index
