"""Inference: seconds per volume (sliding window, naive loop, flip TTA, whole volume) and
the Dice of whole-volume against windowed inference.

Speed: DuetNet (base width 16, the paper's network; weights random, which does not change
the cost) on a BraTS-size volume (240 × 240 × 155, two modalities) with 96³ windows at
overlap 0.5, Gaussian blending:

- ``duetseg sliding``: MONAI ``sliding_window_inference``, ``sw_batch_size`` windows per
  forward pass, everything on the device;
- ``naive loop``: the usual research-code loop, one window at a time, each copied from a
  numpy array to the device and back, accumulated on the host (same windows and weights);
- on a brain-cropped volume (default 144 × 176 × 144, the size of a BraTS case after the
  non-zero crop, which is what duetseg actually predicts): sliding, sliding with flip TTA
  (the three flips: 4 passes) and one whole-volume pass.

Accuracy: a trained run (``--run``, default ``runs/bench_real/ours_s0``; skipped if absent) is
evaluated on its test split with sliding windows and with the whole-volume mode.

Usage: python benchmarks/inference_speed.py [--skip-tta] [--run runs/bench_real/ours_s0]
"""

from __future__ import annotations

import argparse
import shutil
import time
from itertools import product
from pathlib import Path

import numpy as np
import torch
import yaml
from common import REPO, record_tables
from monai.data.utils import compute_importance_map

from duetseg.config import MethodConfig, ModelConfig
from duetseg.inference import predict_volume
from duetseg.methods import MethodContext, build_method
from duetseg.precision import autocast_context
from duetseg.run.layout import RunDir
from duetseg.workflows.evaluate import evaluate_run


def naive_loop(predictor, image: np.ndarray, roi: int, overlap: float, device,
               amp: str = "none") -> dict:
    """One window at a time with host round trips (the baseline being measured)."""
    shape = image.shape[1:]
    step = max(1, int(roi * (1 - overlap)))
    starts = [sorted({*range(0, max(n - roi, 0) + 1, step), max(n - roi, 0)}) for n in shape]
    weight = compute_importance_map((roi,) * 3, mode="gaussian").numpy()
    acc: dict[str, np.ndarray] = {}
    norm = np.zeros(shape, np.float32)
    for sx, sy, sz in product(*starts):
        sl = (slice(sx, sx + roi), slice(sy, sy + roi), slice(sz, sz + roi))
        window = torch.from_numpy(np.ascontiguousarray(image[(slice(None), *sl)]))[None]
        with autocast_context(device, amp):
            out = predictor(window.to(device))
        for key, value in out.items():
            arr = value[0].float().cpu().numpy()
            if key not in acc:
                acc[key] = np.zeros((arr.shape[0], *shape), np.float32)
            acc[key][(slice(None), *sl)] += arr * weight
        norm[sl] += weight
    return {k: v / norm for k, v in acc.items()}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        fn()
    return time.perf_counter() - t0


def speed_rows(args, device) -> list[str]:
    torch.manual_seed(0)
    ctx = MethodContext(modalities=("t1ce", "t2"), num_classes=2,
                        model=ModelConfig(base_width=args.width),
                        method=MethodConfig(name="ours"), max_iterations=1)
    method = build_method(ctx).to(device).eval()
    pred = method.output_probabilities
    roi = args.roi
    full = np.random.default_rng(0).random((2, 240, 240, 155), dtype=np.float32)
    brain = full[:, : args.brain[0], : args.brain[1], : args.brain[2]]
    common = {"overlap": 0.5, "sw_batch_size": args.sw_batch, "device": device,
              "amp": args.amp}
    if device.type == "cuda":  # CUDA context, kernels and allocator warm before timing
        _timed(lambda: predict_volume(pred, brain, (roi,) * 3, **common))
        _timed(lambda: predict_volume(pred, brain, (roi,) * 3, mode="whole", **common))
    rows = [("240×240×155", "duetseg sliding (MONAI, batched)",
             _timed(lambda: predict_volume(pred, full, (roi,) * 3, **common)))]
    rows.append(("240×240×155", "naive loop (1 window, host copies)",
                 _timed(lambda: naive_loop(pred, full, roi, 0.5, device, args.amp))))
    size = "×".join(map(str, args.brain))
    rows.append((size, "duetseg sliding", _timed(
        lambda: predict_volume(pred, brain, (roi,) * 3, **common))))
    if not args.skip_tta:
        rows.append((size, "duetseg sliding + flip TTA (4 passes)",
                     _timed(lambda: predict_volume(pred, brain, (roi,) * 3, tta_flip=True,
                                                   **common))))
    rows.append((size, "duetseg whole volume (one pass)", _timed(
        lambda: predict_volume(pred, brain, (roi,) * 3, mode="whole", **common))))
    lines = ["| volume | inference | s / volume |", "|---|---|---|"]
    lines += [f"| {v} | {name} | {sec:.2f} |" for v, name, sec in rows]
    return lines


def accuracy_rows(run: Path) -> list[str]:
    """Evaluate a copy of ``run`` with each inference mode (the original is not touched)."""
    lines = ["| inference | Dice % (ensemble) | ASD mm | s for the split |", "|---|---|---|---|"]
    for mode in ("sliding", "whole"):
        copy = REPO / "runs" / "bench_inference" / f"{run.name}_{mode}"
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval", "tensorboard"))
        config_file = RunDir(copy).config_file
        cfg = yaml.safe_load(config_file.read_text())
        cfg["inference"]["mode"] = mode
        config_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
        t0 = time.perf_counter()
        summary = evaluate_run(copy, "test", progress=False)
        seconds = time.perf_counter() - t0
        m = summary["metrics"]["ensemble"]["1"]
        lines.append(f"| {mode} | {m['dice']['mean']:.2f} ± {m['dice']['std']:.2f} | "
                     f"{m['asd']['mean']:.2f} | {seconds:.1f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--roi", type=int, default=96)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--sw-batch", type=int, default=2)
    parser.add_argument("--brain", nargs=3, type=int, default=[144, 176, 144])
    parser.add_argument("--skip-tta", action="store_true")
    parser.add_argument("--run", type=Path, default=REPO / "runs" / "bench_real" / "ours_s0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none", help="none | bf16 (CUDA only)")
    args = parser.parse_args()
    lines = speed_rows(args, torch.device(args.device))
    print("\n".join(lines), flush=True)
    notes = (f"DuetNet base width {args.width}, {args.roi}³ windows, overlap 0.5, Gaussian "
             f"blending, sw_batch_size {args.sw_batch}, random weights and input.")
    notes += f" amp {args.amp}."
    if RunDir(args.run).checkpoint_dir.exists():
        lines += ["", f"Accuracy of the two modes, trained run `{args.run.name}` "
                  "(cpu_small: 2 mm, 48³ windows, width 8), its 5 test cases:", ""]
        lines += accuracy_rows(args.run)
    record_tables("speed_gpu" if args.device.startswith("cuda") else "speed_cpu",
                  f"inference_{args.amp}", f"Inference speed ({args.device}, amp {args.amp})",
                  "\n".join(lines), notes)


if __name__ == "__main__":
    main()
