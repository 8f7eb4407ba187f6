"""The results page (``BENCHMARKS.md``), rebuilt from the result records alone.

One section per question, in this order: accuracy, confirmation on fresh seeds, when a
second modality pays, ablation, missing modality, post-processing, speed on CPU, speed on
GPU, metrics against medpy. Each gives the current figures, the command that regenerates
them and a short reading of what they say.
Nothing is trained and no weights are read: accuracy comes from archived evaluated runs,
the rest from JSON records (see :mod:`duetseg.analysis.records`). The output depends on the
records only (fixed bootstrap seed), so building twice gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from duetseg.analysis.accuracy import (
    ablation_section,
    accuracy_section,
    load_protocol_runs,
    missing_section,
)
from duetseg.analysis.confirmation import confirmation_section
from duetseg.analysis.modality_pairs import modality_pairs_section
from duetseg.analysis.records import Record, load_records, render_record
from duetseg.reporting.bootstrap import N_RESAMPLES
from duetseg.reporting.collect import RunRecord

__all__ = ["PAGE_COMMAND", "QUESTIONS", "build_page", "reading", "records_section"]

PAGE_COMMAND = "python benchmarks/results_page.py"

# A reading sentence: the record, the cells it quotes (row start, column) and the sentence
# with one ``{}`` per cell; left out when a record or cell is absent.
Sentence = tuple[str, list[tuple[str, str]], str]
# question folder -> (section title, its reading)
QUESTIONS: dict[str, tuple[str, list[Sentence]]] = {
    "postprocessing": ("Post-processing: the largest connected component", [
        ("largest_component", [("all whole tumour runs", "change per run (95 % CI)"),
                               ("all whole tumour runs", "runs better / worse")],
         "Keeping the largest connected component changes the whole-tumour Dice by {} "
         "points per run over every configuration measured (runs better / worse: {}).")]),
    "speed_cpu": ("Speed on CPU", [
        ("train_step_none_w8_channels_last_ours", [("ours", "s / iteration")],
         "A `cpu_small` training step of the default (48³ crops, width 8) takes {} s on 2 "
         "CPU cores."),
        ("inference_default", [("duetseg default", "s / volume (median)")],
         "The default inference path reads a 144×171×133 volume in {} s."),
        ("runs_per_hour", [("2", "runs / hour"), ("1", "runs / hour")],
         "Two runs at once finish {} runs per hour against {} for one at a time."),
        ("onnx_prediction", [("ours", "torch wall / CPU (s)"),
                             ("ours", "onnxruntime wall / CPU (s)")],
         "Predicting a volume with the default takes {} s (wall / CPU) with PyTorch and {} s "
         "with ONNX Runtime, the CPU default for exported models.")]),
    "speed_gpu": ("Speed on GPU", [
        ("train_step_bf16_w16_channels_last_ours", [("ours", "s / iteration")],
         "On the GPU a bf16 channels-last training step of the default (96³ crops, width "
         "16, batch 4) takes {} s."),
        ("wallclock_brats19", [("**expected", "full run")],
         "One full `brats19` run is expected to take {}."),
        ("inference_bf16", [("240×240×155", "s / volume")],
         "Sliding-window inference of a 240×240×155 volume takes {} s in bf16.")]),
    "metrics": ("Metrics against medpy", [
        ("medpy", [("duetseg", "s / case (mean)"), ("medpy", "s / case (mean)"),
                   ("duetseg", "max relative difference")],
         "duetseg's case metrics take {} s per case against {} s for medpy, with a largest "
         "relative difference of {}.")]),
}


def _row_cell(record: Record | None, start: str, column: str) -> str | None:
    """The cell in ``column`` of the first row of the first table with one of its first
    two cells starting with ``start`` (``None`` when absent)."""
    if record is None or not record.get("tables"):
        return None
    data = record["tables"][0]
    if column not in data["columns"]:
        return None
    for row in data["rows"]:
        if any(c.startswith(start) for c in row[:2]):
            return row[data["columns"].index(column)].strip("*")
    return None


def reading(records: dict[str, Record], sentences: list[Sentence]) -> str:
    """The sentences whose cells the records hold, filled in and joined."""
    out = []
    for name, cells, text in sentences:
        values = [_row_cell(records.get(name), row, column) for row, column in cells]
        if all(values):
            out.append(text.format(*values))
    return " ".join(out)


def records_section(results: Path, question: str) -> str:
    """A section made of one question's tabular records (:data:`QUESTIONS`).

    Args:
        results: the results folder.
        question: a key of :data:`QUESTIONS`.

    Returns:
        Markdown, from the section's heading.
    """
    title, sentences = QUESTIONS[question]
    records = load_records(results, question)
    parts = [f"## {title}"]
    if not records:
        return parts[0] + "\n\nNo records.\n"
    parts.append(reading(records, sentences) or "See the tables.")
    parts += [render_record(r).strip() for r in records.values()]
    return "\n\n".join(parts) + "\n"


def build_page(results: Path, n_resamples: int = N_RESAMPLES,
               runs: list[RunRecord] | None = None) -> str:
    """The whole page.

    Args:
        results: the results folder (``benchmarks/results``).
        n_resamples: bootstrap resamples of the confidence intervals.
        runs: the runs of :func:`load_protocol_runs` when already loaded (None: load them).

    Returns:
        The Markdown text of ``BENCHMARKS.md``.
    """
    runs = load_protocol_runs(results) if runs is None else runs
    sections = [accuracy_section(runs, n_resamples), confirmation_section(results, n_resamples),
                modality_pairs_section(results, n_resamples), ablation_section(runs),
                missing_section(runs, n_resamples),
                *(records_section(results, q) for q in QUESTIONS)]
    titles = [s.splitlines()[0].removeprefix("## ") for s in sections]
    header = ["# Benchmarks", "",
              f"Generated by `{PAGE_COMMAND}` from the records in `benchmarks/results/` "
              "(archived evaluated runs and JSON records); do not edit by hand. Each "
              "section answers one question with the current figures, the command that "
              "regenerates them and a short reading.", "",
              *(f"{i}. {t}" for i, t in enumerate(titles, 1)), ""]
    return "\n".join(header) + "\n" + "\n".join(sections)
