"""Tracked text files describe the product as it is: no work-log words in them.

Flags the words of :data:`WORDS` (work-log words and numbered tracker entries) in every
git-tracked text file, except the data records under ``benchmarks/results/`` and binary
files. The patterns are split so that this file does not match itself.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORDS = re.compile(r"\bs" + r"essions?\b|\bi" + r"ssue \d+", re.IGNORECASE)
# API words, not a work log: pytest's fixture scope, the attribute holding an ONNX Runtime
# InferenceSession
ALLOWED = re.compile(r"""scope=["']se""" + r"""ssion["']|\.se""" + r"""ssion\b""")
# files another engineer is rewriting (none at present)
PENDING: set[str] = set()


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    names = [n for n in out.decode().split("\0") if n]
    return [REPO / n for n in names
            if not n.startswith("benchmarks/results/") and n not in PENDING]


def test_no_history_words_in_tracked_files():
    hits = []
    for path in _tracked_text_files():
        try:
            data = path.read_bytes()
        except OSError:  # listed but absent in the working tree
            continue
        if b"\0" in data[:8192]:
            continue
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if WORDS.search(ALLOWED.sub("", line)):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert not hits, "work-log words in:\n" + "\n".join(hits)
