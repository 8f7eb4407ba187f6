"""Plumbing of the ``duetseg`` command line: argument rewriting, logging, error exits."""

from __future__ import annotations

import logging

import typer
from pydantic import ValidationError

from duetseg.errors import DuetsegError

__all__ = ["expand_multi_value", "parse_label_mapping", "log_to_stderr", "run_app"]

# Options that take several space-separated values (``--modalities t1ce t2``); click only
# supports that for arguments, so ``main`` rewrites them into repeated options first.
_MULTI_VALUE_OPTIONS = ("--modalities",)


def expand_multi_value(argv: list[str]) -> list[str]:
    """``--modalities t1ce t2`` -> ``--modalities t1ce --modalities t2`` (click repeats options)."""
    out: list[str] = []
    current = None
    for token in argv:
        if token in _MULTI_VALUE_OPTIONS:
            current = token
            continue
        if current is not None and not token.startswith("-"):
            out.extend([current, token])
            continue
        current = None
        out.append(token)
    return out


def parse_label_mapping(text: str):
    """``prepare --label-mapping``: a named mapping or ``"src:dst,..."`` pairs."""
    if text in ("whole_tumour", "identity", "auto"):
        return text
    try:
        return {int(k): int(v) for k, v in (p.split(":") for p in text.split(","))}
    except ValueError as exc:
        raise typer.BadParameter("use whole_tumour, identity, auto or e.g. '1:1,2:1,4:2'") from exc


def log_to_stderr() -> None:
    """Show the package's INFO messages (e.g. registration quality) on stderr, once."""
    logger = logging.getLogger("duetseg")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def run_app(app: typer.Typer, args: list[str]) -> None:
    """Run ``app`` on ``args``; expected failures exit 1 with one clear line, no traceback."""
    try:
        app(args=args, prog_name="duetseg", standalone_mode=False)
    except DuetsegError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
    except ValidationError as exc:
        typer.secho(f"error: invalid settings:\n{exc}", fg="red", err=True)
        raise SystemExit(1) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:  # click usage errors (typer >= 0.2x vendors click: no import)
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
