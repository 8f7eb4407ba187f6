"""Where time goes: torch.profiler of one training step and one sliding-window inference.

DuetNet + ``ours`` at base width 16, batch 2 labelled + 2 unlabelled crops; the inference
profile covers one volume (default 160 × 192 × 144, about a brain-cropped BraTS case) at
overlap 0.5. Prints and appends the top operations by self time.

Usage: python benchmarks/profile_step.py [--crop 64] [--volume 160 192 144] [--top 12]
"""

from __future__ import annotations

import argparse
import re
import sys

import torch
from common import append_benchmark
from torch.profiler import ProfilerActivity, profile

from duetseg.config import MethodConfig, ModelConfig
from duetseg.inference.sliding import predict_volume
from duetseg.methods import MethodContext, build_method
from duetseg.precision import autocast_context


def _short(name: str, width: int = 70) -> str:
    """CUDA kernel names run to kilobytes of template arguments: keep the head."""
    if len(name) <= width:
        return name
    head = re.split(r"[<(]", name)[0] or name
    return head[:width] + "…"


def _table(prof, top: int, device: str) -> str:
    key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    if device == "cuda" and averages and not hasattr(averages[0], key):
        key = "self_cuda_time_total"  # torch < 2.4
    events = sorted(averages, key=lambda e: getattr(e, key), reverse=True)[:top]
    total = sum(getattr(e, key) for e in averages) or 1.0
    lines = ["| operation | calls | self time ms | share |", "|---|---|---|---|"]
    for e in events:
        t = getattr(e, key)
        lines.append(f"| `{_short(e.key)}` | {e.count} | {t / 1000:.0f} | "
                     f"{100 * t / total:.1f} % |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--volume", nargs=3, type=int, default=[160, 192, 144])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none", help="none | bf16 (CUDA only)")
    args = parser.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    ctx = MethodContext(modalities=("t1ce", "t2"), num_classes=2,
                        model=ModelConfig(base_width=args.width),
                        method=MethodConfig(name="ours"), max_iterations=1000)
    method = build_method(ctx).to(dev).train()
    opt = torch.optim.SGD(list(method.trainable_parameters()), lr=0.01, momentum=0.9)
    crop = args.crop
    image = torch.rand(4, 2, crop, crop, crop, device=dev)
    label = (torch.rand(2, crop, crop, crop, device=dev) > 0.9).long()

    def step(i: int) -> None:
        with autocast_context(dev, args.amp):
            loss = method.training_losses(image, label, i)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    torch.backends.cudnn.benchmark = True
    step(0)
    step(1)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=activities) as prof_train:
        step(2)
        if dev.type == "cuda":
            torch.cuda.synchronize()
    method.eval()
    volume = torch.rand(2, *args.volume).numpy()
    with profile(activities=activities) as prof_infer:
        predict_volume(method.output_probabilities, volume, (crop,) * 3, overlap=0.5,
                       sw_batch_size=4, device=dev, amp=args.amp)
    train_table = _table(prof_train, args.top, dev.type)
    infer_table = _table(prof_infer, args.top, dev.type)
    print(train_table, "\n\n", infer_table)
    append_benchmark(
        f"Profile: one training step and one inference ({args.device})",
        "python benchmarks/profile_step.py " + " ".join(sys.argv[1:]),
        f"Training step (ours, {crop}³ crops, batch 4, width {args.width}, amp {args.amp}):"
        f"\n\n{train_table}"
        f"\n\nSliding-window inference ({'×'.join(map(str, args.volume))}, {crop}³ windows, "
        f"overlap 0.5, both branches):\n\n{infer_table}",
    )


if __name__ == "__main__":
    main()
