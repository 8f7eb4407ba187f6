"""Aggregate per-case metric rows into a summary, and write/print them.

A row is one (case, output, class) triple with its metrics, e.g.::

    {"case": "BraTS_001", "output": "ensemble", "class": 1,
     "dice": 91.2, "asd": 0.8, "assd": 0.7, "hd95": 2.4, "rvd": -3.5}

NaN marks a metric that is undefined under the empty-mask policy (exactly one of
prediction and reference empty). Statistics ignore NaNs and report how many there were.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duetseg.atomic import atomic_path, save_json

__all__ = ["METRICS", "FOLDER_METRICS", "LATER_METRICS", "CSV_COLUMNS", "summarize",
           "write_metrics_csv", "write_summary", "format_table"]

METRICS = ("dice", "asd", "assd", "hd95", "rvd")
# ``evaluate-folder`` adds IoU and normalised surface Dice (percent, see evaluation.overlap)
FOLDER_METRICS = (*METRICS, "iou", "nsd")
# metrics added after the first release: a metrics.csv written before them lacks the column
LATER_METRICS = ("rvd",)
CSV_COLUMNS = ("case", "output", "class", *METRICS)


def _to_float(value: Any) -> float:
    """Convert a metric value to float; None and empty strings become NaN."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return math.nan
    return float(value)


def _metric(row: Mapping[str, Any], metric: str) -> float:
    """A row's ``metric`` as float; a metric of ``LATER_METRICS`` may be absent (NaN)."""
    if metric in LATER_METRICS:
        return _to_float(row.get(metric))
    return _to_float(row[metric])


def _stats(values: list[float]) -> dict[str, float | int | None]:
    """Mean, population std (ddof=0), median, n and NaN count; JSON-safe."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[~np.isnan(arr)]
    nan_count = int(arr.size - finite.size)
    if finite.size == 0:
        return {"mean": None, "std": None, "median": None, "n": 0, "nan_count": nan_count}
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "median": float(np.median(finite)),
        "n": int(finite.size),
        "nan_count": nan_count,
    }


def summarize(rows: Iterable[Mapping[str, Any]],
              metrics: Sequence[str] = METRICS) -> dict[str, dict[str, dict[str, dict]]]:
    """Summarize metric rows per output, class and metric.

    Args:
        rows: mappings with keys ``case``, ``output``, ``class`` and the metrics in
            ``metrics`` (NaN or None where undefined; those of ``LATER_METRICS`` may be
            absent and count as NaN).
        metrics: the metrics to summarize (default ``METRICS``).

    Returns:
        ``{output: {str(class): {metric: {"mean", "std", "median", "n", "nan_count"}}}}``;
        ``n`` counts non-NaN values, statistics ignore NaNs (std is the population std,
        ddof=0), and a statistic with no value is None (JSON null). Outputs and classes keep
        their first-seen order; classes are sorted numerically where possible.

    Raises:
        KeyError: if a row lacks ``output``, ``class`` or a metric not in ``LATER_METRICS``.
    """
    grouped: dict[str, dict[str, dict[str, list[float]]]] = {}
    for row in rows:
        output = str(row["output"])
        cls = str(row["class"])
        per_class = grouped.setdefault(output, {})
        per_metric = per_class.setdefault(cls, {m: [] for m in metrics})
        for metric in metrics:
            per_metric[metric].append(_metric(row, metric))

    def class_key(c: str) -> tuple[int, float | str]:
        try:
            return (0, float(c))
        except ValueError:
            return (1, c)

    return {
        output: {
            cls: {m: _stats(vals) for m, vals in per_class[cls].items()}
            for cls in sorted(per_class, key=class_key)
        }
        for output, per_class in grouped.items()
    }


def _csv_value(value: Any) -> str:
    """Format a metric for CSV: NaN/None as empty field, floats with full precision."""
    value = _to_float(value)
    return "" if math.isnan(value) else repr(value)


def write_metrics_csv(rows: Iterable[Mapping[str, Any]], path: str | Path,
                      metrics: Sequence[str] = METRICS) -> None:
    """Write rows atomically as CSV: ``case``, ``output``, ``class`` and ``metrics``.

    NaN metrics are written as empty fields.

    Args:
        rows: metric rows (see ``summarize``).
        path: target file.
        metrics: the metric columns (default ``METRICS``: the columns of ``CSV_COLUMNS``).
    """
    with atomic_path(path, suffix=".csv") as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("case", "output", "class", *metrics))
        for row in rows:
            writer.writerow(
                [row["case"], row["output"], row["class"]]
                + [_csv_value(_metric(row, m)) for m in metrics]
            )


def write_summary(summary: Mapping[str, Any], path: str | Path) -> None:
    """Write a summary (from ``summarize``) atomically as JSON.

    Args:
        summary: the summary; any stray float NaN is turned into null.
        path: target file.
    """
    save_json(_json_safe(summary), path)


def _json_safe(obj: Any) -> Any:
    """Recursively replace non-finite floats with None and numpy scalars with Python ones."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


_LABELS = {"dice": "Dice %", "asd": "ASD mm", "assd": "ASSD mm", "hd95": "HD95 mm",
           "rvd": "RVD %", "iou": "IoU %", "nsd": "NSD %"}


def _mean_std(stat: Mapping[str, Any]) -> str:
    if stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def format_table(summary: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]]) -> str:
    """Render a summary as a plain-text mean ± std table.

    One row per output and class, one column per summarized metric (``METRICS``, and the
    others of ``FOLDER_METRICS`` when present); ``n`` is the number of cases (scored plus NaN) and
    ``NaN count`` the number of cases whose distance metrics are undefined (the largest
    NaN count over the metrics).

    Args:
        summary: the result of ``summarize``.

    Returns:
        The table as a string (no trailing newline).
    """
    first = next((pc for per_class in summary.values() for pc in per_class.values()), {})
    metrics = [m for m in FOLDER_METRICS if m in METRICS or m in first]
    headers = ("output", "class", *(_LABELS[m] for m in metrics), "n", "NaN count")
    body: list[tuple[str, ...]] = []
    for output, per_class in summary.items():
        for cls, per_metric in per_class.items():
            nan_count = max(int(per_metric[m]["nan_count"]) for m in METRICS
                            if m not in LATER_METRICS)  # an old file's missing RVD is not one
            n_cases = max(int(per_metric[m]["n"]) + int(per_metric[m]["nan_count"])
                          for m in METRICS)
            body.append(
                (str(output), str(cls), *(_mean_std(per_metric[m]) for m in metrics),
                 str(n_cases), str(nan_count))
            )
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs).rstrip()

    out = [line(headers), line(tuple("-" * w for w in widths))]
    out.extend(line(r) for r in body)
    return "\n".join(out)
