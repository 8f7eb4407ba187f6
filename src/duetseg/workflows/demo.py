"""``duetseg demo``: synthetic two-modality data -> prepare -> train (ours) -> evaluate."""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np

from duetseg.config import PrepareConfig, load_config
from duetseg.data.cache import Cache
from duetseg.data.prepare import prepare_dataset
from duetseg.data.splits import load_splits
from duetseg.data.synthetic import make_synthetic_dataset
from duetseg.reporting import save_overlay
from duetseg.run.layout import RunDir
from duetseg.training import train
from duetseg.workflows.evaluate import evaluate_run

__all__ = ["run_demo"]


def run_demo(out: Path, n_cases: int = 24, overrides: list[str] | None = None,
             progress: bool = True) -> dict:
    """Run the whole pipeline on a synthetic dataset under ``out``.

    Layout: ``out/raw`` (NIfTI), ``out/cache``, ``out/run`` (checkpoints, logs,
    ``eval/test/summary.json``) and ``out/overlay.png``. Re-running reuses the data and
    cache and continues or re-evaluates the run.

    Args:
        out: output folder.
        n_cases: number of synthetic cases.
        overrides: config overrides (``key.sub=value``) on the ``demo`` preset.
        progress: show progress bars and the results.

    Returns:
        The evaluation summary of the test split.
    """
    out = Path(out)
    t0 = time.time()
    raw = out / "raw"
    if not (raw / ".complete").exists():
        make_synthetic_dataset(raw, n_cases=n_cases, seed=0)
        (raw / ".complete").write_text("ok\n")
    prep = PrepareConfig(modalities=["t1ce", "t2"], layout="brats", label_mapping="whole_tumour")
    cache = prepare_dataset(raw, out / "cache", prep, num_workers=2, progress=progress)
    cfg = load_config("demo", [f"cache={cache.root}", *(overrides or [])])
    run_dir = RunDir(out / "run")
    train(cfg, run_dir.root, resume=run_dir.resumable, progress=progress)
    summary = evaluate_run(run_dir.root, "test", progress=progress)
    _demo_overlay(run_dir, cache, out / "overlay.png")
    if progress:
        print(f"demo finished in {time.time() - t0:.0f} s; results in {run_dir.eval('test')}"
              f", overlay in {out / 'overlay.png'}")
    return summary


def _demo_overlay(run_dir: RunDir, cache: Cache, path: Path) -> None:
    """Overlay of the first test case's reference and prediction, written to ``path``."""
    case = load_splits(run_dir.splits_file)["test"][0]
    props = cache.properties(case)
    images = {m: np.asanyarray(nib.load(f).dataobj) for m, f in props["source_files"].items()}
    ref = np.asanyarray(nib.load(props["label_file"]).dataobj) > 0
    pred = np.asanyarray(nib.load(run_dir.eval("test").prediction(case)).dataobj)
    save_overlay(images, ref, pred, path, title=f"{case}: ensemble of both branches")
