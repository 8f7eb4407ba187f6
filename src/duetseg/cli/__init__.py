"""The ``duetseg`` command line: one command per pipeline stage, plus grids and reports.

The typer application lives in :mod:`duetseg.cli.app`; the commands are grouped in
:mod:`~duetseg.cli.stages` (prepare, train, evaluate), :mod:`~duetseg.cli.prediction`
(predict, export, suggest) and :mod:`~duetseg.cli.experiments` (experiment, report, listings,
demo), imported here in the order ``duetseg --help`` lists them. Each command imports its
workflow inside its body, so ``duetseg --help`` stays quick.
"""

from __future__ import annotations

import sys

from duetseg.cli.app import app
from duetseg.cli_support import expand_multi_value, log_to_stderr, run_app

# isort: off
# importing a module adds its commands; this order is the order of ``duetseg --help``
from duetseg.cli.stages import evaluate, evaluate_folder_cmd, prepare, train_cmd
from duetseg.cli.prediction import export_cmd, predict, suggest
from duetseg.cli.experiments import demo, experiment, experiment_run, methods, presets, report
# isort: on

__all__ = ["app", "demo", "evaluate", "evaluate_folder_cmd", "experiment", "experiment_run",
           "export_cmd", "main", "methods", "predict", "prepare", "presets", "report",
           "suggest", "train_cmd"]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: clear one-line errors for expected failures."""
    args = expand_multi_value(list(sys.argv[1:] if argv is None else argv))
    log_to_stderr()
    run_app(app, args)
