"""CPU prediction time of PyTorch against ONNX Runtime on the same weights and volume.

For each method (default ``ours``, DuetNet with two branches, and ``mean_teacher``, one
V-Net): a model is trained briefly on the built-in synthetic data (the ``demo`` preset:
base width 8, 32^3 windows; the weights do not change the cost), exported with its ONNX
graph, then loaded twice from the file, once per backend. Both predict the same cached
volume with the run's sliding-window settings (``predict_probabilities``, what
``duetseg predict`` calls), ``--repeats`` times each, alternating, after one warm-up each;
both use ``--threads`` intra-op threads. Recorded per backend: the median wall time and the
median CPU time of the process (all threads), and the largest absolute difference of any
output's probabilities between the backends.

The record goes to ``benchmarks/results/speed_cpu/onnx_prediction.json`` (command, machine,
commit, date and the table), shown on the results page.

Usage: python benchmarks/onnx_speed.py [--methods ours mean_teacher] [--repeats 3]
       [--threads 2] [--iterations 20] [--shape 64 64 48] [--work runs/bench_onnx]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from common import REPO, record_tables

from duetseg.config import PrepareConfig, load_config
from duetseg.data.prepare import prepare_dataset
from duetseg.data.synthetic import make_synthetic_dataset
from duetseg.export import export_model, load_model_file
from duetseg.run.trained import predict_probabilities
from duetseg.training import train


def _timed(run, image: np.ndarray) -> tuple[float, float, dict[str, np.ndarray]]:
    wall, cpu = time.perf_counter(), time.process_time()
    probs = predict_probabilities(run, image, tta_flip=False)
    return time.perf_counter() - wall, time.process_time() - cpu, probs


def measure(zip_path: Path, image: np.ndarray, repeats: int) -> dict:
    """Time both backends on ``image`` and compare their outputs."""
    runs = {"torch": load_model_file(zip_path, device="cpu", backend="torch"),
            "onnxruntime": load_model_file(zip_path, backend="onnxruntime")}
    times: dict[str, dict[str, list[float]]] = {b: {"wall_s": [], "cpu_s": []} for b in runs}
    probs = {b: _timed(r, image)[2] for b, r in runs.items()}  # warm-up, and the outputs
    for _ in range(repeats):
        for backend, run in runs.items():
            wall, cpu, _ = _timed(run, image)
            times[backend]["wall_s"].append(wall)
            times[backend]["cpu_s"].append(cpu)
    diff = max(float(np.abs(probs["torch"][k] - probs["onnxruntime"][k]).max())
               for k in probs["torch"])
    masks_equal = all(np.array_equal(probs["torch"][k].argmax(0),
                                     probs["onnxruntime"][k].argmax(0)) for k in probs["torch"])
    out = {"max_abs_prob_diff": diff, "argmax_equal": masks_equal}
    for backend, t in times.items():
        out[backend] = {"median_wall_s": statistics.median(t["wall_s"]),
                        "median_cpu_s": statistics.median(t["cpu_s"]), **t}
    out["speedup_wall"] = out["torch"]["median_wall_s"] / out["onnxruntime"]["median_wall_s"]
    out["speedup_cpu"] = out["torch"]["median_cpu_s"] / out["onnxruntime"]["median_cpu_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["ours", "mean_teacher"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 48])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench_onnx")
    args = parser.parse_args()
    import onnxruntime

    torch.set_num_threads(args.threads)
    shutil.rmtree(args.work, ignore_errors=True)
    raw = make_synthetic_dataset(args.work / "raw", n_cases=12, shape=tuple(args.shape))
    cache = prepare_dataset(raw, args.work / "cache",
                            PrepareConfig(modalities=["t1ce", "t2"], layout="brats",
                                          label_mapping="whole_tumour"),
                            num_workers=1, progress=False)
    case = cache.cases[0]
    image = cache.load_image(case, mmap=False)
    results = {}
    for method in args.methods:
        cfg = load_config("demo", [f"cache={cache.root}", f"method.name={method}",
                                   f"train.max_iterations={args.iterations}",
                                   f"train.val_every={args.iterations}",
                                   f"train.checkpoint_every={args.iterations}",
                                   "train.num_workers=0"])
        run_dir = args.work / method
        train(cfg, run_dir, progress=False)
        zip_path = export_model(run_dir, args.work / f"{method}.zip", onnx=True)
        results[method] = {"roi_size": list(cfg.train.crop_size),
                           "overlap": cfg.inference.overlap,
                           "sw_batch_size": cfg.inference.sw_batch_size,
                           "base_width": cfg.model.base_width,
                           **measure(zip_path, image, args.repeats)}
        r = results[method]
        print(f"{method}: torch {r['torch']['median_wall_s']:.3f} s wall / "
              f"{r['torch']['median_cpu_s']:.3f} s CPU, onnxruntime "
              f"{r['onnxruntime']['median_wall_s']:.3f} s / "
              f"{r['onnxruntime']['median_cpu_s']:.3f} s, max |dp| "
              f"{r['max_abs_prob_diff']:.2e}, argmax equal {r['argmax_equal']}")
    rows = ["| method | torch wall / CPU (s) | onnxruntime wall / CPU (s) | max abs prob diff "
            "| masks equal |", "|---|---|---|---|---|"]
    for method, r in results.items():
        rows.append(f"| {method} | {r['torch']['median_wall_s']:.2f} / "
                    f"{r['torch']['median_cpu_s']:.2f} | "
                    f"{r['onnxruntime']['median_wall_s']:.2f} / "
                    f"{r['onnxruntime']['median_cpu_s']:.2f} | "
                    f"{r['max_abs_prob_diff']:.1e} | {'yes' if r['argmax_equal'] else 'no'} |")
    note = (f"One cached {'×'.join(map(str, image.shape[1:]))} volume, the `demo` setting "
            f"(32³ windows, width 8), {args.threads} threads, median of {args.repeats} "
            f"repeats; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}.")
    record_tables("speed_cpu", "onnx_prediction", "Prediction: PyTorch against ONNX Runtime",
                  "\n".join(rows), note)

if __name__ == "__main__":
    main()
