"""Plumbing of the ``duetseg`` command line: argument rewriting, logging, error exits.

Ctrl-C (SIGINT): a command wrapped with :func:`interruptible` turns ``KeyboardInterrupt``
into :class:`Interrupted`, which :func:`run_app` reports as one line on stderr
(``interrupted; <what to do next>``) and exit status 130 (128 + SIGINT), the shell
convention. typer itself turns a ``KeyboardInterrupt`` into exit code 130 but, with
``standalone_mode=False``, *returns* that code instead of raising it, so an unwrapped
interrupt used to end the program with status 0 and no message; :func:`run_app` therefore
also treats a returned non-zero code as the exit status.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from duetseg.errors import DuetsegError

__all__ = ["INTERRUPTED_EXIT", "Interrupted", "expand_multi_value", "interruptible",
           "parse_class_mapping", "parse_label_mapping", "log_to_stderr", "run_app"]

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for a Ctrl-C'd program
_F = TypeVar("_F", bound=Callable[..., Any])


class Interrupted(Exception):  # noqa: N818 - the word the user sees
    """A command stopped by Ctrl-C; ``str()`` is the hint printed after ``interrupted; ``.

    Deliberately not a ``KeyboardInterrupt``: typer would swallow that (see the module
    docstring).
    """


def interruptible(hint: str) -> Callable[[_F], _F]:
    """Decorate a command so that Ctrl-C exits 130 with ``interrupted; <hint>``.

    Args:
        hint: what the user can do next; ``{name}`` fields are filled from the command's
            keyword arguments (e.g. ``"duetseg train --resume --out {out} resumes it"``).

    Returns:
        The decorator (the command keeps its signature, which typer reads).
    """

    def decorate(command: _F) -> _F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except KeyboardInterrupt:
                raise Interrupted(hint.format(**kwargs)) from None

        return wrapper  # type: ignore[return-value]

    return decorate

# Options that take several space-separated values (``--modalities t1ce t2``); click only
# supports that for arguments, so ``main`` rewrites them into repeated options first.
_MULTI_VALUE_OPTIONS = ("--modalities", "--classes")


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
    if text in ("whole_tumour", "tumour_core", "enhancing_tumour", "identity", "auto"):
        return text
    try:
        return {int(k): int(v) for k, v in (p.split(":") for p in text.split(","))}
    except ValueError as exc:
        raise typer.BadParameter("use whole_tumour, tumour_core, enhancing_tumour, identity, "
                                 "auto or e.g. '1:1,2:1,4:2'") from exc


def parse_class_mapping(text: str) -> dict[int, int]:
    """``evaluate-folder --label-mapping``: a BraTS region or ``"src:dst,..."`` pairs.

    ``whole_tumour``, ``tumour_core`` and ``enhancing_tumour`` map the BraTS values 1-4 to
    class 1 as ``prepare`` does; ``0:0`` is implied.
    """
    from duetseg.data.preprocess import BRATS_REGIONS

    if text == "whole_tumour":
        return {0: 0, 1: 1, 2: 1, 3: 1, 4: 1}
    if text in BRATS_REGIONS:
        return {0: 0, **BRATS_REGIONS[text]}
    mapping = parse_label_mapping(text)
    if not isinstance(mapping, dict):
        raise typer.BadParameter("use whole_tumour, tumour_core, enhancing_tumour or value "
                                 "pairs such as '1:1,2:1,4:1'", param_hint="--label-mapping")
    return {0: 0, **mapping}


def log_to_stderr() -> None:
    """Show the package's INFO messages (e.g. registration quality) on stderr, once."""
    logger = logging.getLogger("duetseg")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _interrupted(hint: str) -> SystemExit:
    print(f"interrupted; {hint}", file=sys.stderr, flush=True)
    return SystemExit(INTERRUPTED_EXIT)


def run_app(app: typer.Typer, args: list[str]) -> None:
    """Run ``app`` on ``args``; expected failures exit 1 with one clear line, no traceback.

    Ctrl-C exits 130 with one ``interrupted; ...`` line (see the module docstring).
    """
    try:
        code = app(args=args, prog_name="duetseg", standalone_mode=False)
    except Interrupted as exc:
        raise _interrupted(str(exc)) from None
    except KeyboardInterrupt:  # outside a command: while parsing or importing
        raise _interrupted("run the same command again") from None
    except typer.Abort as exc:  # older typer: KeyboardInterrupt (or EOF) -> Abort
        if isinstance(exc.__cause__, KeyboardInterrupt):
            raise _interrupted("run the same command again") from None
        typer.secho("error: aborted", fg="red", err=True)
        raise SystemExit(1) from None
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
    if code == INTERRUPTED_EXIT:  # typer's own KeyboardInterrupt handling returns 130
        raise _interrupted("run the same command again")
    if isinstance(code, int) and code != 0:
        raise SystemExit(code)
