"""Shared helpers of the tests that train tiny runs (not collected as tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from duetseg.config import PrepareConfig
from duetseg.data.cache import Cache
from duetseg.data.prepare import prepare_dataset
from duetseg.data.synthetic import make_synthetic_dataset

__all__ = ["one_thread", "tiny_cache"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """In-process training on one thread: much faster on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_cache(root: Path, n_cases: int = 5, seed: int = 1) -> Cache:
    """A prepared cache of ``n_cases`` synthetic 24 x 24 x 20 T1ce + T2 cases under ``root``."""
    raw = make_synthetic_dataset(root / "raw", n_cases=n_cases, shape=(24, 24, 20), seed=seed)
    prep = PrepareConfig(modalities=["t1ce", "t2"], layout="brats", label_mapping="whole_tumour")
    return prepare_dataset(raw, root / "cache", prep, num_workers=1, progress=False)
