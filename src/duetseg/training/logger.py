"""Training logs: ``log.csv`` (one row per logged iteration) and TensorBoard scalars."""

from __future__ import annotations

import csv
from pathlib import Path

from duetseg.atomic import save_text
from duetseg.run.layout import RunDir

__all__ = ["RunLogger"]


class RunLogger:
    """Append-only CSV + TensorBoard logger that can be rewound on resume.

    Args:
        run_dir: run directory (``log.csv`` and ``tensorboard/`` are written there).
        resume_from: on resume, rows with iteration >= this are dropped so the log matches
            the checkpoint exactly.
        tensorboard: also write TensorBoard event files.
    """

    def __init__(self, run_dir: Path, resume_from: int | None = None, tensorboard: bool = True):
        paths = RunDir(run_dir)
        self.path = paths.log_file
        self.rows: list[dict[str, float]] = []
        if resume_from is not None and self.path.exists():
            with self.path.open() as fh:
                self.rows = [
                    {k: float(v) for k, v in row.items() if v != ""}
                    for row in csv.DictReader(fh)
                    if int(float(row["iteration"])) < resume_from
                ]
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(paths.tensorboard_dir), purge_step=resume_from)

    def log(self, iteration: int, values: dict[str, float], flush: bool = False) -> None:
        """Record ``values`` at ``iteration``."""
        row = {"iteration": float(iteration), **{k: float(v) for k, v in values.items()}}
        self.rows.append(row)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, iteration)
        if flush:
            self.flush()

    def flush(self) -> None:
        """Rewrite ``log.csv`` atomically with every row so far."""
        keys: list[str] = []
        for row in self.rows:
            keys.extend(k for k in row if k not in keys)
        lines = [",".join(keys)]
        for row in self.rows:
            lines.append(",".join("" if k not in row else _fmt(row[k]) for k in keys))
        save_text("\n".join(lines) + "\n", self.path)
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)
