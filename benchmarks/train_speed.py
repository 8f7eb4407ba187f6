"""Training step speed and peak memory: DuetNet + ``ours`` against a single-network method.

Each (method, crop) pair runs in a fresh subprocess so its peak resident memory (CPU) or
peak allocated memory (CUDA) is its own. A step = forward + loss + backward + SGD step +
``after_step`` on random input at the paper's batch (2 labelled + 2 unlabelled crops),
base width 16 (the paper's network), no data loading (see ``data_loading.py`` for that).

Usage: python benchmarks/train_speed.py [--crops 48 64 96] [--methods ours mean_teacher]
       [--steps 3] [--device cpu] [--amp none|bf16] [--channels-last] [--compile]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from common import record_tables


def measure(method: str, crop: int, steps: int, device: str, width: int,
            amp: str, channels_last: bool = False, compile_step: bool = False) -> dict:
    """Time ``steps`` training steps after one warm-up step (runs in the child process)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from duetseg.config import MethodConfig, ModelConfig
    from duetseg.methods import MethodContext, build_method
    from duetseg.precision import autocast_context, to_memory_format

    torch.manual_seed(0)
    dev = torch.device(device)
    ctx = MethodContext(modalities=("t1ce", "t2"), num_classes=2,
                        model=ModelConfig(base_width=width), method=MethodConfig(name=method),
                        max_iterations=1000)
    torch.backends.cudnn.benchmark = True  # as the trainer does (train.deterministic off)
    model = to_memory_format(build_method(ctx).to(dev).train(), channels_last)
    opt = torch.optim.SGD(list(model.trainable_parameters()), lr=0.01, momentum=0.9)
    image = to_memory_format(torch.rand(4, 2, crop, crop, crop, device=dev), channels_last)
    label = (torch.rand(2, crop, crop, crop, device=dev) > 0.9).long()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    losses = torch.compile(model.training_losses) if compile_step else model.training_losses

    def step(i: int, fn=losses) -> None:
        with autocast_context(dev, amp):
            loss = fn(image, label, i)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.after_step(i)

    t_warm = time.perf_counter()
    step(0)
    step(1)  # cudnn.benchmark tunes on the first call; compile may recompile once
    if dev.type == "cuda":
        torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t_warm
    t0 = time.perf_counter()
    for i in range(2, steps + 2):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / steps
    peak_gib = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
    params = sum(p.numel() for p in model.trainable_parameters())
    with FlopCounterMode(display=False) as counter:  # eager: the same arithmetic, counted
        step(steps + 2, model.training_losses)
    flops = counter.get_total_flops()
    return {"gflop": flops / 1e9, "tflops": flops / seconds / 1e12,
            "method": method, "crop": crop, "s_per_it": seconds, "peak_gib": peak_gib,
            "params_m": params / 1e6, "device": device, "amp": amp,
            "channels_last": channels_last, "compile": compile_step, "warmup_s": warmup_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crops", nargs="+", type=int, default=[48, 64, 96])
    parser.add_argument("--methods", nargs="+", default=["ours", "mean_teacher"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none",
                        help="none | bf16 | auto (bf16 applies on CUDA only)")
    parser.add_argument("--channels-last", action="store_true",
                        help="channels-last 3D memory format for weights and input")
    parser.add_argument("--compile", action="store_true", help="torch.compile the step")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, crop = args.child.split(":")
        print(json.dumps(measure(method, int(crop), args.steps, args.device, args.width,
                                 args.amp, args.channels_last, args.compile)))
        return
    rows = []
    for crop in args.crops:
        for method in args.methods:
            cmd = [sys.executable, __file__, "--child", f"{method}:{crop}", "--steps",
                   str(args.steps), "--device", args.device, "--width", str(args.width),
                   "--amp", args.amp, *(["--channels-last"] if args.channels_last else []),
                   *(["--compile"] if args.compile else [])]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    mem = "peak RSS GiB" if args.device == "cpu" else "peak CUDA GiB"
    lines = [f"| method | network | crop | batch | s / iteration | {mem} | params (M) | "
             "warm-up s | GFLOP / step | TFLOP/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        net = "DuetNet (2 branches)" if r["method"] in ("ours", "supervised") else "VNet"
        lines.append(f"| {r['method']} | {net} | {r['crop']}³ | 4 | {r['s_per_it']:.3f} | "
                     f"{r['peak_gib']:.2f} | {r['params_m']:.2f} | {r['warmup_s']:.1f} | "
                     f"{r['gflop']:.1f} | {r['tflops']:.3f} |")
    flags = "_channels_last" * args.channels_last + "_compile" * args.compile
    record_tables(
        "speed_gpu" if args.device.startswith("cuda") else "speed_cpu",
        f"train_step_{args.amp}_w{args.width}{flags}_{'_'.join(args.methods)}",
        f"Training step speed and memory ({args.device}, amp {args.amp}"
        f"{', channels-last' if args.channels_last else ''}"
        f"{', torch.compile' if args.compile else ''})",
        "\n".join(lines),
        (f"Random input, 2 labelled + 2 unlabelled crops, base width {args.width}; "
               f"mean of {args.steps} steps after two warm-up steps; each row in a fresh "
               "process (peak memory includes the Python/torch baseline, ~0.3 GiB on CPU). "
               "GFLOP / step: `torch.utils.flop_counter` over one eager step (forward + "
               "backward; convolutions and matrix products, 1 multiply-add = 2 FLOP); "
               "TFLOP/s = that count / the measured step time."),
    )


if __name__ == "__main__":
    main()
