"""Shared helpers for benchmark scripts: machine description and BENCHMARKS.md appends."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

__all__ = ["REPO", "SHARED_DATA", "machine", "append_benchmark", "require_shared_data",
           "predicted_tumour", "record_result"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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


def append_benchmark(title: str, command: str, table: str, notes: str = "") -> None:
    """Append a section to BENCHMARKS.md with command, machine and date."""
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"\n## {title}\n\n- command: `{command}`\n- machine: {machine()}\n"
               f"- date: {date}\n\n{table}\n")
    if notes:
        section += f"\n{notes}\n"
    path = REPO / "BENCHMARKS.md"
    if not path.exists():
        path.write_text("# Benchmarks\n\nMeasured figures only; each section says how.\n")
    with path.open("a") as fh:
        fh.write(section)
    print(section)


def predicted_tumour(run, case: str):
    """``(image, predicted, true)`` of a cached case: the primary output's tumour (argmax > 0)
    as ``duetseg evaluate`` predicts it (the run's inference settings, no flip TTA).

    Args:
        run: a :class:`duetseg.run.trained.TrainedRun`.
        case: a case of its cache.
    """
    from duetseg.run.trained import predict_probabilities

    image = run.cache.load_image(case, mmap=False)
    probs = predict_probabilities(run, image, tta_flip=False)[run.method.primary_output]
    return image, probs.argmax(0) > 0, run.cache.load_label(case, mmap=False) > 0


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
    path = REPO / "benchmarks" / "results" / question / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_text(json.dumps(record, indent=1) + "\n", path)
    return path
