"""Fixtures shared by the test modules: tiny synthetic caches and one-thread training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_run import train_tiny

from duetseg.config import PrepareConfig
from duetseg.data.cache import Cache
from duetseg.data.prepare import prepare_dataset
from duetseg.data.synthetic import make_synthetic_dataset

SyntheticCacheFactory = Callable[..., Cache]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: in-process training is much faster so on 2 busy cores.

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")`` or as an argument.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_cache() -> SyntheticCacheFactory:
    """Factory: write a synthetic raw dataset under ``root/raw`` and prepare ``root/cache``.

    ``synthetic_cache(root, n_cases=5, shape=(24, 24, 20), seed=1, raw_modalities=None)``
    returns the prepared T1ce + T2 whole-tumour :class:`Cache`; ``raw_modalities`` writes
    more modalities to the raw folder than the cache uses (default: T1ce and T2 only).
    """

    def make(root: Path, n_cases: int = 5, shape: Sequence[int] = (24, 24, 20), seed: int = 1,
             raw_modalities: Sequence[str] | None = None) -> Cache:
        extra = {} if raw_modalities is None else {"modalities": tuple(raw_modalities)}
        raw = make_synthetic_dataset(Path(root) / "raw", n_cases=n_cases, shape=tuple(shape),
                                     seed=seed, **extra)
        prep = PrepareConfig(modalities=["t1ce", "t2"], layout="brats",
                             label_mapping="whole_tumour")
        return prepare_dataset(raw, Path(root) / "cache", prep, num_workers=1, progress=False)

    return make

@pytest.fixture(scope="session")
def exported_models(tmp_path_factory, synthetic_cache) -> dict[str, Path]:
    """Two tiny runs exported once with their ONNX graphs: ``ours`` (DuetNet, two branches)
    and ``mean_teacher`` (one network). Keys: ``cache``, ``<method>_run``, ``<method>_zip``."""
    from duetseg.export import export_model

    root = tmp_path_factory.mktemp("exported")
    cache = synthetic_cache(root)
    out = {"cache": cache.root}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for method in ("ours", "mean_teacher"):
            run = train_tiny(cache, root / method, **{"method.name": method})
            out[f"{method}_run"] = run
            out[f"{method}_zip"] = export_model(run, root / f"{method}.zip", onnx=True)
    finally:
        torch.set_num_threads(before)
    return out


@pytest.fixture(scope="session")
def npy_cache(tmp_path_factory) -> Path:
    """A folder of four (2, 16, 14, 10) images, two of them with a label (``lab0``, ``lab1``;
    ``unl0``, ``unl1`` unlabelled), as a cache holds them."""
    root = tmp_path_factory.mktemp("npy_cache")
    rng = np.random.default_rng(0)
    for name, labelled in [("lab0", True), ("lab1", True), ("unl0", False), ("unl1", False)]:
        np.save(root / f"{name}.npy", (rng.random((2, 16, 14, 10)) + 0.5).astype(np.float32))
        if labelled:
            np.save(root / f"{name}_seg.npy", (rng.random((16, 14, 10)) > 0.5).astype(np.uint8))
    return root
