"""``duetseg report``: tables, statistics, figures and a self-contained HTML page from runs."""

from __future__ import annotations

from pathlib import Path

from duetseg.atomic import save_text
from duetseg.reporting.collect import collect_runs
from duetseg.reporting.figures import plot_curves, plot_qualitative, qualitative_runs
from duetseg.reporting.html import render_report, stats_html
from duetseg.reporting.stats import compare_to_reference
from duetseg.reporting.tables import build_table1, build_table2, group_label, table1_runs

__all__ = ["make_report"]


def make_report(run_dirs: list[Path], out_dir: Path, split: str = "test",
                class_id: int | None = None, max_cases: int = 3) -> Path:
    """Write the report of evaluated runs.

    Writes into ``out_dir``: ``table1.md``, ``table1.csv``, ``table2.md`` and ``table2.csv``
    (only with ablation runs), ``curves.png``, ``qualitative.png`` (only when predictions,
    references and images are available) and ``index.html`` (self-contained).

    Args:
        run_dirs: run directories, each evaluated on ``split`` (``duetseg evaluate``).
        out_dir: output folder (created).
        split: the evaluated split.
        class_id: class to report; None averages the foreground classes per case.
        max_cases: rows of the qualitative figure.

    Returns:
        The path of ``index.html``.

    Raises:
        ConfigError: a folder is not an evaluated run, or two runs collide in Table 1.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = collect_runs([Path(d) for d in run_dirs], split)
    table1 = build_table1(runs, class_id)
    save_text(table1.to_markdown(), out_dir / "table1.md")
    save_text(table1.to_csv(), out_dir / "table1.csv")
    table2 = build_table2(runs, class_id)
    if table2 is not None:
        save_text(table2.to_markdown(), out_dir / "table2.md")
        save_text(table2.to_csv(), out_dir / "table2.csv")
    t1_runs = table1_runs(runs)
    tests = compare_to_reference(t1_runs, class_id)
    labels = {c: group_label(t1_runs, c) for c in {r.labeled for r in t1_runs}}
    curves = plot_curves(runs, out_dir / "curves.png")
    qual_runs = qualitative_runs(t1_runs)
    qualitative = plot_qualitative(qual_runs, out_dir / "qualitative.png",
                                   max_cases=max_cases)
    note = "" if qualitative is not None else (
        "No qualitative figure: no test case has a saved prediction in every shown run "
        "and a reference label and image in the cache.")
    page = render_report(
        f"duetseg report ({split} split, {len(runs)} runs)", table1, table2,
        stats_html(tests, labels), curves, qualitative,
        [f"{r.label}: {r.run_dir} (primary output {r.primary_output})" for r in runs], note)
    index = out_dir / "index.html"
    save_text(page, index)
    return index
