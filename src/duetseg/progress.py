"""Progress display: a tqdm bar on a terminal, plain lines every ~30 s otherwise.

A tqdm bar redraws itself with carriage returns many times a second; redirected to a file
(``make demo > log``, a batch job's log) that is megabytes of ``\\r`` updates. When stderr is
not a terminal, :class:`PlainProgress` writes one ordinary line at most every ``interval``
seconds and one at the end instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm.auto import tqdm

__all__ = ["PlainProgress", "progress_bar"]


class PlainProgress:
    """The part of tqdm's interface duetseg uses, printing plain lines.

    Args:
        iterable: optional iterable to wrap.
        total: expected number of steps.
        initial: steps already done (a resumed run).
        desc: label at the start of each line.
        disable: print nothing.
        interval: seconds between two lines.
        file: where lines go (stderr by default).
    """

    def __init__(self, iterable: Iterable | None = None, total: int | None = None,
                 initial: int = 0, desc: str = "", disable: bool = False,
                 interval: float = 30.0, file: TextIO | None = None, **_: Any):
        self.iterable = iterable
        self.total = total if total is not None else _length(iterable)
        self.n = initial
        self.desc = desc
        self.disable = disable
        self.interval = interval
        self.file = file
        self.postfix = ""
        self._start = time.monotonic()
        self._last = self._start

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)

    def set_postfix(self, values: dict[str, Any] | None = None, refresh: bool = True) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in (values or {}).items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write()

    def close(self) -> None:
        if self.n and self._last != -1.0:
            self._write()
        self._last = -1.0

    def _write(self) -> None:
        if self.disable:
            return
        of_total = f"/{self.total}" if self.total else ""
        line = f"{self.desc}: {self.n}{of_total} ({time.monotonic() - self._start:.0f} s)"
        if self.postfix:
            line += f" {self.postfix}"
        print(line, file=self.file or sys.stderr, flush=True)


def _length(iterable: Iterable | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> tqdm | PlainProgress:
    """A tqdm bar when stderr is a terminal, else :class:`PlainProgress` (same arguments)."""
    if sys.stderr.isatty():
        return tqdm(iterable, **kwargs)
    return PlainProgress(iterable, **kwargs)
