"""The default inference path against the research-code window loop, same weights, one run.

Speed: a single VNet (base width 16, 2 concatenated modalities, the SSL4MIS-style network;
seeded random weights, which do not change the cost) on a brain-cropped 1 mm BraTS-size
volume (default 144 x 171 x 133), ``--threads`` torch threads:

- ``plain loop``: what SSL4MIS-style research code does — 96^3 patches at stride 64, one
  patch per forward pass, uniform averaging of the overlapping softmaxes on the host;
- ``duetseg default``: ``predict_with_config`` with the shipped ``InferenceConfig()`` (mode
  ``auto``: one pass when the padded volume fits ``whole_max_voxels``, else windows);
- ``duetseg sliding``: MONAI windows, overlap 0.5, Gaussian, batch 2.

Each is timed ``--repeats`` times after one warm-up call; the table gives the median.

Accuracy (``--runs``): for trained runs, the per-case Dice (cache geometry, primary output)
of the plain loop (patch = the run's crop, stride 2/3 of it), of ``sliding`` and of the
default, on each run's test split; paired differences are pooled over all (run, case) pairs.

Usage: python benchmarks/inference_default.py [--threads 2] [--runs RUN ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from itertools import product
from pathlib import Path

import numpy as np
import torch
from common import record_tables

from duetseg.config import InferenceConfig
from duetseg.evaluation.metrics import dice
from duetseg.inference import predict_volume
from duetseg.inference.sliding import predict_with_config, resolve_mode
from duetseg.models.vnet import VNet


def plain_loop(predictor, image: np.ndarray, patch: int, stride: int) -> dict[str, np.ndarray]:
    """One patch per forward pass, uniform averaging on the host (the research-code loop)."""
    pad = [max(patch - n, 0) for n in image.shape[1:]]
    padded = np.pad(image, [(0, 0)] + [(0, p) for p in pad])
    shape = padded.shape[1:]
    starts = [sorted({*range(0, n - patch + 1, stride), n - patch}) for n in shape]
    score: dict[str, np.ndarray] = {}
    count = np.zeros(shape, np.float32)
    for sx, sy, sz in product(*starts):
        sl = (slice(sx, sx + patch), slice(sy, sy + patch), slice(sz, sz + patch))
        window = torch.from_numpy(np.ascontiguousarray(padded[(slice(None), *sl)]))[None]
        with torch.no_grad():
            out = predictor(window)
        for key, value in out.items():
            score.setdefault(key, np.zeros((value.shape[1], *shape), np.float32))
            score[key][(slice(None), *sl)] += value[0].numpy()
        count[sl] += 1
    crop = (slice(None), *(slice(0, n) for n in image.shape[1:]))
    return {k: (v / count)[crop] for k, v in score.items()}


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN primitives
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed_rows(args) -> tuple[list[str], dict[str, float]]:
    torch.manual_seed(0)
    net = VNet(2, 2, base_width=16).eval()

    def predictor(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"vnet": torch.softmax(net(x), 1)}

    image = np.random.default_rng(0).random((2, *args.volume), dtype=np.float32)
    infer = InferenceConfig()
    roi = (96, 96, 96)
    cases = {
        "plain loop (patch 96, stride 64, 1 window per pass)":
            lambda: plain_loop(predictor, image, 96, 64),
        f"duetseg default (mode {infer.mode} -> "
        f"{resolve_mode(infer.mode, image.shape[1:], infer.whole_max_voxels)})":
            lambda: predict_with_config(predictor, image, roi, infer, "cpu"),
        "duetseg sliding (overlap 0.5, gaussian, batch 2)":
            lambda: predict_volume(predictor, image, roi, mode="sliding", overlap=0.5),
        "duetseg sliding (overlap 0, gaussian, batch 2)":
            lambda: predict_volume(predictor, image, roi, mode="sliding", overlap=0.0),
        "duetseg whole volume (one pass)":
            lambda: predict_volume(predictor, image, roi, mode="whole"),
    }
    seconds = {}
    for name, fn in cases.items():
        with torch.no_grad():
            seconds[name] = _median_seconds(fn, args.repeats)
        print(f"{name}: {seconds[name]:.2f} s", flush=True)
    plain = next(iter(seconds.values()))
    size = "×".join(map(str, args.volume))
    lines = ["| volume | inference | s / volume (median) | speed-up over the plain loop |",
             "|---|---|---|---|"]
    lines += [f"| {size} | {name} | {sec:.2f} | {plain / sec:.2f}× |"
              for name, sec in seconds.items()]
    return lines, seconds


def accuracy_rows(runs: list[Path]) -> list[str]:
    from duetseg.run.trained import load_trained_run

    others = ("plain loop", "sliding 0.5", "sliding 0", "whole")
    diffs: dict[str, list[float]] = {m: [] for m in others}
    means: dict[str, list[float]] = {m: [] for m in (*others, "default")}
    for run_dir in runs:
        run = load_trained_run(run_dir, "last", "cpu")
        key = run.method.primary_output
        crop = int(run.cfg.train.crop_size[0])
        test = json.loads((run_dir / "splits.json").read_text())["test"]
        for case in test:
            image = run.cache.load_image(case, mmap=False)
            label = run.cache.load_label(case, mmap=False) > 0
            with torch.no_grad():
                outs = {
                    "plain loop": plain_loop(run.method.output_probabilities, image, crop,
                                             max(1, 2 * crop // 3)),
                    "sliding 0.5": predict_volume(run.method.output_probabilities, image,
                                                  run.roi_size, mode="sliding", overlap=0.5),
                    "sliding 0": predict_volume(run.method.output_probabilities, image,
                                                run.roi_size, mode="sliding", overlap=0.0),
                    "whole": predict_volume(run.method.output_probabilities, image,
                                            run.roi_size, mode="whole"),
                    "default": predict_with_config(run.method.output_probabilities, image,
                                                   run.roi_size, InferenceConfig(), "cpu"),
                }
            scores = {m: dice(o[key][1:].sum(0) > 0.5, label) for m, o in outs.items()}
            for m in means:
                means[m].append(scores[m])
            for m in diffs:
                diffs[m].append(scores["default"] - scores[m])
            print(f"{run_dir.name} {case}: " + ", ".join(f"{m} {d:.1f}" for m, d in scores.items()),
                  flush=True)
    rng = np.random.default_rng(0)
    lines = [f"Trained runs: {', '.join(r.name for r in runs)}; {len(means['default'])} "
             "(run, case) pairs, Dice % of the primary output in the cache geometry.", "",
             "| inference | mean Dice % | default minus this, mean [95 % bootstrap CI] |",
             "|---|---|---|"]
    for m, values in means.items():
        if m == "default":
            lines.append(f"| default | {np.mean(values):.2f} | — |")
            continue
        d = np.asarray(diffs[m])
        boot = rng.choice(d, (10000, d.size)).mean(1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        lines.append(f"| {m} | {np.mean(values):.2f} | {d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}] |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--volume", nargs=3, type=int, default=[144, 171, 133])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", nargs="*", type=Path, default=[])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines, _ = speed_rows(args)
    notes = (f"Seeded random VNet16 weights (same for every row), {args.threads} torch "
             "thread(s), one warm-up call then the median of "
             f"{args.repeats}. The default is `InferenceConfig()` as shipped.")
    if args.runs:
        lines += ["", *accuracy_rows(args.runs)]
    table = "\n".join(lines)
    print(table)
    record_tables("speed_cpu", "inference_default",
                  "Default inference path vs the research-code loop (cpu)", table, notes)


if __name__ == "__main__":
    main()
