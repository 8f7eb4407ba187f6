"""Exceptions with messages that name the case and file at fault."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DuetsegError", "InputError", "ConfigError", "ModelFileError"]


class DuetsegError(Exception):
    """Base class of every error duetseg raises on purpose."""


class InputError(DuetsegError):
    """Bad input data: the message names the case and the file.

    Args:
        message: what is wrong.
        case: case identifier, if known.
        file: offending file, if known.
    """

    def __init__(self, message: str, case: str | None = None, file: str | Path | None = None):
        self.case = case
        self.file = None if file is None else str(file)
        parts = []
        if case is not None:
            parts.append(f"case {case!r}")
        if file is not None:
            parts.append(f"file {str(file)!r}")
        prefix = ", ".join(parts)
        self.reason = message
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def __reduce__(self):
        # Keep case/file when the error crosses a process boundary (parallel prepare).
        return (type(self), (self.reason, self.case, self.file))


class ConfigError(DuetsegError):
    """An invalid configuration or a run directory that does not match it."""


class ModelFileError(InputError):
    """A model file from ``duetseg export`` that cannot be used (the message names the file):
    changed or missing members, a newer format, pickled content, or no ONNX graph."""
