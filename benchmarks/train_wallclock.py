"""Expected wall-clock of a full run at a preset's setting, measured on a few real cases.

Meant for the paper's Table 1 setting (preset ``brats19``: 1 mm, 96³ crops, batch 2 + 2,
base width 16, 60k iterations, validation every 200 iterations) on one GPU, where a full run
cannot be timed within a short benchmark run:

1. prepare the given BraTS-layout cases (T1ce + T2, whole tumour, 1 mm);
2. train twice, ``--short`` and ``--long`` iterations, each ending with one validation and
   one checkpoint; seconds per iteration = (T_long - T_short) / (long - short), so start-up,
   loader start, cuDNN tuning and the final validation cancel out (the loader, augmentation
   and host-device copies are included);
3. time validation (sliding window + Dice) per cached case, and test evaluation (inference +
   metrics + NIfTI in the original geometry) per case, from the long run;
4. expected = iterations x s/it + (iterations / val_every) x val cases x s/val case
   + test cases x s/test case, with the SSL4MIS split sizes (25 val, 60 test) by default.

Usage: python benchmarks/train_wallclock.py --data DIR [--preset brats19] [--short 40]
       [--long 240] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import torch
from common import REPO, record_tables

from duetseg.config import PrepareConfig, load_config
from duetseg.data.cache import Cache
from duetseg.data.prepare import prepare_dataset
from duetseg.data.splits import load_splits
from duetseg.methods import build_method
from duetseg.run.layout import RunDir
from duetseg.run.trained import method_context, resolve_device
from duetseg.training import train
from duetseg.training.validation import validate
from duetseg.workflows.evaluate import evaluate_run


def timed_run(cfg, run_dir: Path) -> float:
    t0 = time.perf_counter()
    train(cfg, run_dir, progress=False)
    return time.perf_counter() - t0


def seconds_per_val_case(cfg, cache: Cache, cases: list[str]) -> float:
    """Validation as the trainer runs it, on the val cases (one warm-up pass first)."""
    device = resolve_device(cfg.train.device)
    method = build_method(method_context(cfg, cache)).to(device)
    roi = cfg.inference.roi_size or cfg.train.crop_size
    validate(method, cache, cases[:1], roi, cfg.inference, device)
    t0 = time.perf_counter()
    validate(method, cache, cases, roi, cfg.inference, device)
    return (time.perf_counter() - t0) / len(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="BraTS-layout case folders")
    parser.add_argument("--preset", default="brats19")
    parser.add_argument("--short", type=int, default=40)
    parser.add_argument("--long", type=int, default=240)
    parser.add_argument("--val-cases", type=int, default=25, help="val cases of the full run")
    parser.add_argument("--test-cases", type=int, default=60, help="test cases of the full run")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench_wallclock")
    parser.add_argument("--set", nargs="*", default=[], help="extra config overrides")
    args = parser.parse_args()
    prep = PrepareConfig(modalities=["t1ce", "t2"], layout="brats", label_mapping="whole_tumour")
    cache = prepare_dataset(args.data, args.work / "cache", prep,
                            num_workers=min(8, os.cpu_count() or 1))
    n_cases = len(cache)
    base = load_config(args.preset)
    full_iters, val_every = base.train.max_iterations, base.train.val_every
    seconds = {}
    for n in (args.short, args.long):
        over = [f"cache={cache.root}", f"train.max_iterations={n}", f"train.val_every={n}",
                f"train.checkpoint_every={n}", "splits.labeled=2", "splits.val=1",
                "splits.test=1", *args.set]
        cfg = load_config(args.preset, over)
        run_dir = args.work / f"run_{n}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        seconds[n] = timed_run(cfg, run_dir)
        print(f"{n} iterations: {seconds[n]:.1f} s", flush=True)
    s_it = (seconds[args.long] - seconds[args.short]) / (args.long - args.short)
    splits = load_splits(RunDir(run_dir).splits_file)
    val_ids = splits["val"] + splits["test"]
    s_val = seconds_per_val_case(cfg, cache, val_ids)
    t0 = time.perf_counter()
    evaluate_run(run_dir, "test", progress=False)
    s_test = (time.perf_counter() - t0) / len(splits["test"])
    n_val = full_iters // val_every
    total = full_iters * s_it + n_val * args.val_cases * s_val + args.test_cases * s_test
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    lines = ["| quantity | measured | full run |", "|---|---|---|",
             f"| training s / iteration (loader included) | {s_it:.3f} | "
             f"{full_iters} it → {full_iters * s_it / 3600:.2f} h |",
             f"| validation s / case | {s_val:.2f} | {n_val} × {args.val_cases} cases → "
             f"{n_val * args.val_cases * s_val / 3600:.2f} h |",
             f"| test s / case (inference + metrics + NIfTI) | {s_test:.2f} | "
             f"{args.test_cases} cases → {args.test_cases * s_test / 60:.1f} min |",
             f"| **expected wall-clock, one run** | | **{total / 3600:.2f} h** |"]
    print("\n".join(lines), flush=True)
    record_tables(
        "speed_gpu" if torch.cuda.is_available() else "speed_cpu", f"wallclock_{args.preset}",
        f"Expected wall-clock of one `{args.preset}` run ({dev})",
        "\n".join(lines),
        (f"Measured on {n_cases} real BraTS cases at 1 mm (T1ce + T2): runs of "
               f"{args.short} and {args.long} iterations ({seconds[args.short]:.0f} s and "
               f"{seconds[args.long]:.0f} s), overrides {args.set or 'none'}; validation "
               f"every {val_every} iterations as in the preset."),
    )


if __name__ == "__main__":
    main()
