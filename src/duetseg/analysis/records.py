"""Benchmark result records and their Markdown.

A record is one JSON file ``<results>/<question>/<name>.json`` holding where the figures
come from (``command``, ``machine``, ``commit``, ``date``; ``migrated_from`` when they were
copied from an earlier page) and the figures themselves. Tabular figures are stored as
``title``, ``tables`` (each ``caption``, ``columns``, ``rows`` of strings) and ``note``;
:func:`render_record` writes them as a Markdown subsection.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["Record", "load_records", "markdown_table", "render_record", "provenance",
           "tables_from_markdown"]

Record = dict[str, Any]


def load_records(results: Path, question: str) -> dict[str, Record]:
    """The records of one question, by name, in name order.

    Args:
        results: the results folder (``benchmarks/results``).
        question: the question's folder name.

    Returns:
        name (file stem) -> record; empty when the folder does not exist.
    """
    folder = Path(results) / question
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped).

    Args:
        columns: header cells.
        rows: body rows.

    Returns:
        The table's lines joined, without a trailing newline.
    """
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(columns), "|" + "|".join("---" for _ in columns) + "|",
                      *(line(r) for r in rows)])


def provenance(record: Record) -> str:
    """One line: the command that regenerates a record, where and when it was measured."""
    return (f"Command: `{record['command']}`; measured {record['date']} on "
            f"{record['machine']} (commit {record['commit']}).")


def render_record(record: Record, level: int = 3) -> str:
    """A tabular record as a Markdown subsection: title, tables, note, provenance.

    Args:
        record: a record with ``title`` and ``tables``.
        level: heading level of the title.

    Returns:
        Markdown text ending with a newline.
    """
    parts = [f"{'#' * level} {record['title']}"]
    for table in record["tables"]:
        if table.get("caption"):
            parts.append(table["caption"])
        parts.append(markdown_table(table["columns"], table["rows"]))
    if record.get("note"):
        parts.append(record["note"])
    parts.append(provenance(record))
    return "\n\n".join(parts) + "\n"


def tables_from_markdown(text: str) -> list[dict[str, Any]]:
    """The Markdown tables of ``text`` as record tables (``caption``, ``columns``, ``rows``).

    A paragraph right before a table becomes its caption; other text is ignored.

    Args:
        text: Markdown with pipe tables.

    Returns:
        One dict per table, in order.
    """
    tables, caption, paragraph = [], "", []
    lines = text.splitlines() + [""]
    i = 0
    while i < len(lines):
        if lines[i].startswith("|"):
            rows = []
            while lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(set(c) <= set("-: ") for c in cells):
                    rows.append(cells)
                i += 1
            caption = " ".join(paragraph) if paragraph else caption
            tables.append({"caption": caption, "columns": rows[0], "rows": rows[1:]})
            caption, paragraph = "", []
            continue
        paragraph = paragraph + [lines[i].strip()] if lines[i].strip() else paragraph
        if not lines[i].strip() and i + 1 < len(lines) and not lines[i + 1].startswith("|"):
            paragraph = []
        i += 1
    return tables
