"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader never sees a half-written cache entry, checkpoint or prediction, and an
interrupted write leaves only a ``.tmp-*`` file that the next run ignores.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TMP_PREFIX", "atomic_path", "remove_temporaries", "save_json", "save_npy",
           "save_text"]

TMP_PREFIX = ".tmp-"  # temporary files start with it: hidden, and easy to clean up


@contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    Args:
        target: final file path.
        suffix: suffix for the temporary name (some writers infer the format from it,
            e.g. ``.nii.gz``).

    Yields:
        The temporary path to write to (not created yet: the writer creates it). On an
        exception, ``KeyboardInterrupt`` included, it is removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The name is drawn before anything is created (not mkstemp), so a Ctrl-C at any point
    # finds the file, if it exists yet, inside the try and removes it.
    tmp_path = target.parent / f"{TMP_PREFIX}{target.name}-{secrets.token_hex(6)}{suffix}"
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def remove_temporaries(folder: str | Path) -> None:
    """Delete the temporary files an interrupted write left in ``folder`` (not recursive).

    Args:
        folder: a folder written with :func:`atomic_path`; a missing folder is left alone.
    """
    folder = Path(folder)
    if folder.is_dir():
        for path in folder.glob(f"{TMP_PREFIX}*"):
            if path.is_file():
                path.unlink(missing_ok=True)


def save_json(obj: Any, target: str | Path) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_text(text: str, target: str | Path) -> None:
    """Write ``text`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def save_npy(array: np.ndarray, target: str | Path) -> None:
    """Write ``array`` as ``.npy`` atomically (readable later with ``mmap_mode='r'``)."""
    with atomic_path(target, suffix=".npy") as tmp:
        np.save(tmp, np.ascontiguousarray(array))
