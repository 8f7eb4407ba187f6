"""Read evaluated run directories into plain records for tables, statistics and figures.

A run directory holds ``config.yaml``, ``splits.json``, ``log.csv`` and
``eval/<split>/{metrics.csv, summary.json, predictions/}`` (see :mod:`duetseg.run.layout`).
Metric rows are kept as plain dicts (no pandas): ``case`` (str), ``output`` (str),
``class`` (int) and the metrics of ``METRICS`` as floats, NaN where undefined.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duetseg.config import Config
from duetseg.data.splits import load_splits
from duetseg.errors import ConfigError
from duetseg.evaluation.summary import LATER_METRICS, METRICS
from duetseg.method_roles import ABLATION_SWITCHES
from duetseg.output_spec import OutputSpec, specs_from_summary
from duetseg.reporting.roles import ablation_flags, ablation_switches
from duetseg.run.config import load_run_config
from duetseg.run.layout import EvalDir, RunDir

__all__ = ["RunRecord", "collect_runs", "load_run", "read_metrics_csv", "read_log_csv",
           "case_values"]


@dataclass
class RunRecord:
    """One evaluated run.

    Attributes:
        run_dir: the run directory.
        method: ``method.name`` of the config.
        labeled: number of labelled training cases (from ``splits.json``).
        labeled_spec: the configured ``splits.labeled`` as a string (e.g. ``"5%"``).
        labeled_percent: ``labeled / len(train) * 100``.
        seed: ``train.seed``.
        mmf: multi-modal fusion on; mae: modality-aware enhancement on; mcml: contrastive
            mutual learning on. Each is the method's ablation flag for the run's config
            (:meth:`duetseg.methods.base.Method.ablation_flags`, e.g. MCML is off in a
            weight-0 run, the labelled-only control), False for a switch the method lacks.
        primary_output: the output scored as the method's prediction.
        rows: per-case metric rows of ``eval/<split>/metrics.csv``.
        summary: ``eval/<split>/summary.json``.
        config: the full run config.
        split: the evaluated split.
        splits: the run's splits.
        name: the configuration's name in reports: ``config.name`` when set, else
            ``method`` (filled in when left empty).
        output_specs: what each output is: ``summary["output_specs"]``, or for a summary
            written before that key the names and descriptions read as before (see
            :func:`duetseg.output_spec.specs_from_summary`; filled in when left empty).
    """

    run_dir: Path
    method: str
    labeled: int
    labeled_spec: str
    labeled_percent: float
    seed: int
    mmf: bool
    mae: bool
    mcml: bool
    primary_output: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    config: Config
    split: str = "test"
    splits: dict[str, list[str]] = field(default_factory=dict)
    name: str = ""
    output_specs: list[OutputSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.method
        if not self.output_specs:
            self.output_specs = specs_from_summary(self.summary, self.outputs,
                                                   self.primary_output)

    @property
    def split_key(self) -> str:
        """Identifies the data split: a short hash of the sorted labelled cases and the sorted
        cases of the evaluated split, so runs of one fold (and seed) share it and runs of
        different folds (other test and labelled lists) do not."""
        parts = [sorted(self.splits.get("labeled", [])), sorted(self.splits.get(self.split, []))]
        return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:10]

    @property
    def fold(self) -> int | None:
        """The cross-validation fold (``splits.fold``), None without ``splits.folds``."""
        return None if self.config.splits.folds is None else int(self.config.splits.fold)

    @property
    def outputs(self) -> list[str]:
        """Output names present in the metrics (first-seen order)."""
        return list(dict.fromkeys(r["output"] for r in self.rows))

    @property
    def branch_outputs(self) -> list[str]:
        """The outputs of the metrics that are modality branches (``kind == "branch"``)."""
        branches = {s.name for s in self.output_specs if s.kind == "branch"}
        return [o for o in self.outputs if o in branches]

    @property
    def is_dual_branch(self) -> bool:
        """True for runs with per-modality branch outputs (two or more in the metrics)."""
        return len(self.branch_outputs) >= 2

    @property
    def paths(self) -> RunDir:
        """The paths of the run directory."""
        return RunDir(self.run_dir)

    @property
    def eval_dir(self) -> EvalDir:
        """``run_dir/eval/<split>``."""
        return self.paths.eval(self.split)

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``ours 5% s1337`` (`` f2`` for fold 2 of a
        cross-validation, ``[-MAE]`` etc. for the ablation switches that are off)."""
        off = [s.upper() for s in self.switches_off] if self.is_dual_branch else []
        suffix = f" [-{' -'.join(off)}]" if off else ""
        fold = "" if self.fold is None else f" f{self.fold}"
        return f"{self.name} {self.labeled_percent:.3g}% s{self.seed}{fold}{suffix}"

    @property
    def switches_off(self) -> list[str]:
        """The method's ablation switches (:func:`~duetseg.reporting.roles.ablation_switches`)
        that this run turns off, in order."""
        return [s for s in ablation_switches(self.method) if not getattr(self, s)]

    def output_modality(self, output: str) -> str:
        """The modality an output reads (from :attr:`output_specs`), else its name."""
        spec = next((s for s in self.output_specs if s.name == output), None)
        return output if spec is None or spec.modality is None else spec.modality

    def case_values(self, metric: str, output: str | None = None,
                    class_id: int | None = None) -> dict[str, float]:
        """Per-case values of one metric; see :func:`case_values`."""
        return case_values(self.rows, metric, output or self.primary_output, class_id)


def _float(text: str) -> float:
    text = text.strip()
    return math.nan if text == "" else float(text)


def read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    """Read ``metrics.csv`` rows (empty cells become NaN, ``class`` an int).

    A file written before a metric of ``LATER_METRICS`` existed reads as NaN for it.

    Raises:
        ConfigError: missing file or missing columns.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; run 'duetseg evaluate' on this run first")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("case", "output", "class", *METRICS)
                   if c not in (reader.fieldnames or []) and c not in LATER_METRICS]
        if missing:
            raise ConfigError(f"{path}: missing columns {missing}")
        return [{"case": r["case"], "output": r["output"], "class": int(float(r["class"])),
                 **{m: _float(r.get(m) or "") for m in METRICS}} for r in reader]


def read_log_csv(path: Path) -> dict[str, np.ndarray]:
    """Read a training ``log.csv`` into column -> float array (NaN for empty cells).

    Returns:
        An empty dict when the file does not exist or has no rows.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    keys = list(rows[0].keys())
    return {k: np.array([_float(r.get(k) or "") for r in rows]) for k in keys}


def case_values(rows: list[dict[str, Any]], metric: str, output: str,
                class_id: int | None = None) -> dict[str, float]:
    """Per-case values of ``metric`` for ``output``.

    Args:
        rows: metric rows.
        metric: one of ``METRICS``.
        output: output name.
        class_id: a class; None averages the foreground classes (class > 0) of each case,
            ignoring NaN classes (NaN when all are NaN).

    Returns:
        case -> value, in first-seen case order.
    """
    per_case: dict[str, list[float]] = {}
    for row in rows:
        if row["output"] != output:
            continue
        if (class_id is None and row["class"] > 0) or row["class"] == class_id:
            per_case.setdefault(row["case"], []).append(float(row[metric]))
    out = {}
    for case, vals in per_case.items():
        arr = np.asarray(vals)
        finite = arr[np.isfinite(arr)]
        out[case] = float(finite.mean()) if finite.size else math.nan
    return out


def load_run(run_dir: Path, split: str = "test") -> RunRecord:
    """Load one evaluated run.

    Args:
        run_dir: a run directory evaluated with ``duetseg evaluate``.
        split: the evaluated split to read.

    Returns:
        The run's record.

    Raises:
        ConfigError: not a run directory, no splits, or the split was not evaluated.
    """
    paths = RunDir(run_dir)
    cfg = load_run_config(paths)
    splits = load_splits(paths.splits_file)
    eval_dir = paths.eval(split)
    rows = read_metrics_csv(eval_dir.metrics_file)
    summary_path = eval_dir.summary_file
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    primary = summary.get("primary_output") or (rows[0]["output"] if rows else "")
    n_train = len(splits["train"])
    labeled = len(splits["labeled"])
    flags = ablation_flags(cfg.method.name, cfg) or {}
    return RunRecord(
        run_dir=paths.root,
        method=cfg.method.name,
        labeled=labeled,
        labeled_spec=str(cfg.splits.labeled),
        labeled_percent=100.0 * labeled / n_train if n_train else math.nan,
        seed=int(cfg.train.seed),
        **{s: flags.get(s, False) for s in ABLATION_SWITCHES},
        primary_output=str(primary),
        rows=rows,
        summary=summary,
        config=cfg,
        split=split,
        splits=splits,
        name=cfg.name or cfg.method.name,
    )


def collect_runs(run_dirs: list[Path], split: str = "test") -> list[RunRecord]:
    """Load several evaluated runs (order kept).

    Args:
        run_dirs: run directories.
        split: the evaluated split to read.

    Returns:
        One record per run directory.

    Raises:
        ConfigError: no run given, or a run lacks its config, splits or metrics.
    """
    if not run_dirs:
        raise ConfigError("no run directories given")
    return [load_run(Path(d), split) for d in run_dirs]
