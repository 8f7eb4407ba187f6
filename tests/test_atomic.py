"""Atomic writes: a temporary file next to the target, renamed onto it only on success."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from duetseg.atomic import (
    TMP_PREFIX,
    atomic_path,
    remove_temporaries,
    save_json,
    save_npy,
    save_text,
)


class WriterFailed(RuntimeError):
    """Raised by the test writers."""


def _fail_half_way(target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text("half of the")
        raise WriterFailed("disk full")


def test_writes_to_a_temporary_name_then_renames(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.nii.gz"
    with atomic_path(target, suffix=".nii.gz") as tmp:
        assert tmp.parent == target.parent  # same folder: the rename is atomic
        assert tmp.name.startswith(f"{TMP_PREFIX}out.nii.gz-") and tmp.name.endswith(".nii.gz")
        assert not tmp.exists() and not target.exists()  # the writer creates it
        tmp.write_text("complete")
    assert target.read_text() == "complete"
    assert not tmp.exists()
    assert [p.name for p in target.parent.iterdir()] == ["out.nii.gz"]


def test_a_failing_writer_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(WriterFailed, match="disk full"):
        _fail_half_way(target)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_writer_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(WriterFailed):
        _fail_half_way(target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_overwrites_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old and longer")
    save_text("new", target)
    assert target.read_text() == "new"
    save_text("newer", target)
    assert target.read_text() == "newer"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_save_helpers_round_trip(tmp_path: Path) -> None:
    save_json({"b": [1, 2], "a": None}, tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text()) == {"b": [1, 2], "a": None}
    assert list(json.loads((tmp_path / "x.json").read_text())) == ["b", "a"]  # order kept
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)[:, ::2]  # not contiguous
    save_npy(array, tmp_path / "x.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy", mmap_mode="r"), array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "x.npy"]


def test_remove_temporaries_only_removes_temporary_files(tmp_path: Path) -> None:
    (tmp_path / f"{TMP_PREFIX}a.pt-123.pt").write_text("left by a killed write")
    (tmp_path / "a.pt").write_text("kept")
    (tmp_path / f"{TMP_PREFIX}dir").mkdir()
    remove_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{TMP_PREFIX}dir", "a.pt"]
    remove_temporaries(tmp_path / "missing")  # no error
