"""Progress display: plain lines (no carriage returns) when stderr is not a terminal."""

from __future__ import annotations

import io

from tqdm.auto import tqdm

import duetseg.progress as progress_mod
from duetseg.progress import PlainProgress, progress_bar


def test_plain_progress_writes_few_plain_lines():
    out = io.StringIO()
    bar = PlainProgress(total=1000, desc="train", interval=3600, file=out)
    for _ in range(1000):
        bar.set_postfix({"loss": "0.123"})
        bar.update(1)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [text.splitlines()[0]]  # only the closing line
    assert text.startswith("train: 1000/1000") and "loss=0.123" in text


def test_plain_progress_writes_every_interval_and_wraps_iterables():
    out = io.StringIO()
    bar = PlainProgress(range(5), desc="eval", interval=0.0, file=out)
    assert list(bar) == [0, 1, 2, 3, 4]
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("eval: 1/5") and lines[-1].startswith("eval: 5/5")


def test_plain_progress_disabled_prints_nothing():
    out = io.StringIO()
    bar = PlainProgress(total=3, disable=True, interval=0.0, file=out)
    bar.update(3)
    bar.close()
    assert out.getvalue() == ""


def test_progress_bar_chooses_by_terminal(monkeypatch):
    class FakeStderr(io.StringIO):
        def __init__(self, tty):
            super().__init__()
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr(progress_mod.sys, "stderr", FakeStderr(False))
    assert isinstance(progress_bar(total=3), PlainProgress)
    monkeypatch.setattr(progress_mod.sys, "stderr", FakeStderr(True))
    bar = progress_bar(total=3, disable=True)
    assert isinstance(bar, tqdm)
    bar.close()
