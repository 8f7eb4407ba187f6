"""Shared helpers for benchmark scripts: machine description, paths and result records."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

__all__ = ["REPO", "SHARED_DATA", "RUNS", "RESULTS", "machine", "require_shared_data",
           "record_result", "record_tables"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
RUNS = REPO / "runs"  # run folders (not committed)
RESULTS = REPO / "benchmarks" / "results"  # records and archived runs (committed)


def machine() -> str:
    """One line describing the machine and torch build."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def require_shared_data(sub: str) -> Path:
    """Return ``../shared/data/<sub>`` or exit with a clear message when it is absent."""
    path = SHARED_DATA / sub
    if not path.exists():
        sys.exit(f"benchmark needs real data at {path} (see ../shared/data/README.md); absent here")
    return path


def record_result(question: str, name: str, data: dict) -> Path:
    """Write one benchmark's raw result as ``benchmarks/results/<question>/<name>.json``.

    The record carries the command line, the machine, the commit and the date beside
    ``data``, so a results page can be rebuilt from the records alone. Written atomically.

    Returns:
        The record's path.
    """
    from duetseg.atomic import save_text

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO)
    record = {"command": "python " + " ".join([script, *sys.argv[1:]]),
              "machine": machine(), "commit": commit,
              "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              **data}
    path = RESULTS / question / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_text(json.dumps(record, indent=1) + "\n", path)
    return path


def record_tables(question: str, name: str, title: str, markdown: str, note: str = "") -> Path:
    """Record Markdown tables (and their captions) as ``results/<question>/<name>.json``.

    The results page (``benchmarks/results_page.py``) shows them under ``title``.

    Returns:
        The record's path.
    """
    from duetseg.analysis.records import tables_from_markdown

    path = record_result(question, name, {"title": title,
                                          "tables": tables_from_markdown(markdown),
                                          "note": note})
    print(f"{title}\n\n{markdown}\n\n{note}\nrecorded in {path}")
    return path
