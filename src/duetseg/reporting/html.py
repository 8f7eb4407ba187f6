"""A self-contained HTML report: inline CSS, tables as ``<table>``, images as data URIs."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from duetseg.reporting.roles import default_baseline_method, reference_method
from duetseg.reporting.stats import WilcoxonResult
from duetseg.reporting.tabular import Table

__all__ = ["table_html", "image_html", "stats_html", "render_report"]

# ``{highlight}``: the CSS class of highlighted rows (see :func:`_highlight_class`)
_CSS = """
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .2em; }}
table {{ border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }}
th, td {{ border: 1px solid #bbb; padding: .3em .6em; text-align: center; }}
th {{ background: #eee; }} td:first-child {{ text-align: left; }}
tr.{highlight} td {{ font-weight: bold; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
.note {{ color: #555; font-size: .85em; }} ul.runs {{ font-size: .85em; }}
"""

_REFERENCE = object()  # default of ``highlight``: the proposed method's row


def _highlight_class() -> str:
    """The CSS class of highlighted rows: the proposed method's name (the row it is for)."""
    return reference_method()


def table_html(table: Table, table_id: str, highlight: str | None | object = _REFERENCE
               ) -> str:
    """Render a :class:`Table` as an HTML ``<table id=...>`` plus its notes.

    Args:
        table: the table.
        table_id: value of the ``id`` attribute.
        highlight: rows whose first cell is this are shown in bold (None: no row; by
            default the proposed method's, :func:`~duetseg.reporting.roles.reference_method`).

    Returns:
        HTML text (cells are escaped).
    """
    if highlight is _REFERENCE:
        highlight = reference_method()
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        marked = row and highlight is not None and row[0] == highlight
        cls = f' class="{esc(_highlight_class())}"' if marked else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    notes = "".join(f"<li>{esc(n)}</li>" for n in table.notes)
    return (f'<table id="{esc(table_id)}"><caption>{esc(table.title)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            + (f'<ul class="note">{notes}</ul>' if notes else ""))


def image_html(path: Path, alt: str) -> str:
    """Embed a PNG as ``<img src="data:image/png;base64,...">`` with alt text."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def stats_html(results: dict[tuple[str, int], WilcoxonResult], labels: dict[int, str],
               reference: str | None = None) -> str:
    """The Wilcoxon tests as an HTML table (``id="stats"``).

    Args:
        results: (name, labelled count) -> test against ``reference``.
        labels: column label of each labelled count.
        reference: the reference configuration's name; None = the proposed method.

    Returns:
        HTML text, or a note when there is nothing to compare.
    """
    reference = reference_method() if reference is None else reference
    if not results:
        return f'<p class="note">No configuration to compare with {html.escape(reference)}.</p>'
    rows = []
    for (name, labeled), res in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        p = "n/a" if math.isnan(res.p) else f"{res.p:.4g}"
        med = "n/a" if math.isnan(res.median_diff) else f"{res.median_diff:+.2f}"
        cells = [name, labels.get(labeled, str(labeled)), str(res.n), med, p, res.note]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in (
        "Method", "Labeled", "pairs (seed, split, case)",
        f"median Dice diff ({reference} − method)", "p", "note"))
    return (f'<table id="stats"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            '<p class="note">Paired two-sided Wilcoxon signed-rank test '
            "(scipy.stats.wilcoxon) of per-case Dice of the primary output.</p>")


def render_report(title: str, table1: Table, table2: Table | None, stats: str,
                  curves: Path | None, qualitative: Path | None, runs: list[str],
                  qualitative_note: str = "", gain: Table | None = None,
                  reference: str | None = None) -> str:
    """Assemble the whole page.

    Args:
        title: page title.
        table1: Table 1.
        table2: Table 2, or None (section says no ablation runs).
        stats: HTML of the statistics section (see :func:`stats_html`).
        curves: training-curves PNG, or None.
        qualitative: qualitative-figure PNG, or None.
        runs: one line per run (listed at the end).
        qualitative_note: shown when there is no qualitative figure.
        gain: the gain-over-a-baseline table, or None (section says how to get one).
        reference: the reference configuration (its Table 1 row is highlighted); None =
            the proposed method.

    Returns:
        The HTML document.
    """
    reference = reference_method() if reference is None else reference
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>"
        f"<style>{_CSS.format(highlight=_highlight_class())}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        '<section id="sec-table1"><h2>Table 1: comparison</h2>',
        table_html(table1, "table1", reference),
        "</section>",
        '<section id="sec-table2"><h2>Table 2: ablation</h2>',
        table_html(table2, "table2", None) if table2 is not None
        else '<p class="note">No ablation runs (fewer than two MMF/MAE/MCML settings).</p>',
        "</section>",
        f'<section id="sec-stats"><h2>Statistics</h2>{stats}</section>',
        '<section id="sec-gain"><h2>Gain over a baseline</h2>',
        table_html(gain, "gain", None) if gain is not None
        else '<p class="note">No gain table: pass a baseline configuration (report '
             f"--baseline NAME; default {esc(default_baseline_method())} when a configuration "
             "has that name).</p>",
        "</section>",
        '<section id="sec-curves"><h2>Training curves</h2>',
        image_html(curves, "training loss and validation Dice against iteration, per run")
        if curves is not None else '<p class="note">No curves.</p>',
        "</section>",
        '<section id="sec-qualitative"><h2>Qualitative comparison</h2>',
        image_html(qualitative, "image, ground truth and each method's prediction on the "
                   "slice with the largest reference area") if qualitative is not None
        else f'<p class="note">{esc(qualitative_note or "No qualitative figure.")}</p>',
        "</section>",
        '<section id="sec-runs"><h2>Runs</h2><ul class="runs">',
        "".join(f"<li>{esc(r)}</li>" for r in runs), "</ul></section>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
