"""The ``duetseg`` typer application and its top-level options; commands are added by the
modules of :mod:`duetseg.cli`."""

from __future__ import annotations

from typing import Annotated

import typer

from duetseg import __version__

__all__ = ["AGAIN", "app"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Semi-supervised multi-modal 3D segmentation (DuetNet).")

AGAIN = "run the same command again to resume (finished {what} are kept)"
"""The resume hint of commands that keep their finished parts (``{what}``: cases, runs)."""


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"duetseg {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="print the version and exit")] = False,
) -> None:
    """Semi-supervised multi-modal 3D segmentation (DuetNet)."""
