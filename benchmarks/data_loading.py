"""Batches per second from the cache with the training augmentation, by worker count.

Reads the real BraTS cases at their native 1 mm (prepared into ``local_data/brats_1mm`` on
first use; with ``--synthetic`` a generated dataset instead), draws two-stream batches
(2 labelled + 2 unlabelled crops, random crop + flip + rot90, as in training) through the
same DataLoader the trainer uses, and reports batches/s next to the training step's need.

Usage: python benchmarks/data_loading.py [--crops 48 96] [--workers 0 1 2] [--batches 40]
"""

from __future__ import annotations

import argparse
import time

from common import REPO, SHARED_DATA, record_tables

from duetseg.config import PrepareConfig
from duetseg.data.prepare import prepare_dataset
from duetseg.data.sampling import TwoStreamBatches, make_loader
from duetseg.data.synthetic import make_synthetic_dataset


def _cache(synthetic: bool):
    prep = PrepareConfig(modalities=["t1ce", "t2"], layout="brats", label_mapping="whole_tumour")
    if synthetic or not (SHARED_DATA / "brats-dev").exists():
        raw = REPO / "local_data" / "synthetic_raw"
        if not (raw / ".complete").exists():
            make_synthetic_dataset(raw, n_cases=12, seed=0)
            (raw / ".complete").write_text("ok\n")
        return prepare_dataset(raw, REPO / "local_data" / "synthetic_cache", prep), "synthetic"
    cache = prepare_dataset(SHARED_DATA / "brats-dev", REPO / "local_data" / "brats_1mm", prep)
    return cache, "real BraTS at 1 mm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crops", nargs="+", type=int, default=[48, 96])
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--synthetic", action="store_true")
    args = parser.parse_args()
    cache, source = _cache(args.synthetic)
    cases = sorted(cache.cases)
    labelled, unlabelled = cases[:4], cases[4:]
    lines = ["| crop | workers | batches / s | ms / batch |", "|---|---|---|---|"]
    for crop in args.crops:
        for workers in args.workers:
            ds = TwoStreamBatches(cache.root, labelled, unlabelled, (crop,) * 3, 4, 2, seed=0,
                                  foreground_prob=0.33)
            loader = iter(make_loader(ds, 0, args.batches + 2, workers, seed=0))
            next(loader)  # start-up (worker spawn, first memory maps) is not throughput
            t0 = time.perf_counter()
            for _ in range(args.batches):
                next(loader)
            rate = args.batches / (time.perf_counter() - t0)
            lines.append(f"| {crop}³ | {workers} | {rate:.1f} | {1000 / rate:.1f} |")
            print(lines[-1], flush=True)
    record_tables(
        "speed_cpu", "data_loading", f"Data loading ({source})",
        "\n".join(lines),
        (f"{len(cases)} cached cases (memory-mapped .npy), batch 4 = 2 labelled + 2 "
               f"unlabelled crops with flip + rot90 and foreground oversampling 0.33, mean "
               f"over {args.batches} batches after the first."),
    )


if __name__ == "__main__":
    main()
