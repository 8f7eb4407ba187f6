"""How much foreground does a trained run predict on unlabelled crops, by batch composition?

A second forward pass that produces pseudo-labels (``ours`` with ``cutmix`` or
``intensity_view``) runs in training mode, so batch norm normalises with the statistics of
whatever crops it is given. This probe takes a finished run, draws crops as training does
(2 labelled, foreground-centred with the run's ``foreground_prob``, and 2 uniform unlabelled
ones) and reports the share of unlabelled-crop voxels predicted as foreground (mean over
the network's outputs, e.g. both branches) when the unlabelled crops pass (a) alone in
training mode, (b) with the labelled crops in training mode (a normal step), (c) in
evaluation mode (running statistics, as at inference), against the true share.

Usage: python benchmarks/teacher_batch_probe.py RUN [RUN ...] [--draws 6]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from common import append_benchmark

from duetseg.data.augment import random_crop
from duetseg.run.trained import load_trained_run

__all__ = ["foreground_shares"]


def _fg(outputs: list[torch.Tensor], rows: slice) -> float:
    return float(np.mean([(o[rows].softmax(1)[:, 1:].sum(1) > 0.5).float().mean()
                          for o in outputs]))


def foreground_shares(run_dir: Path, draws: int, seed: int = 0) -> dict[str, float]:
    """Mean foreground share (%) of the unlabelled crops under (a), (b), (c) and the truth."""
    run = load_trained_run(run_dir, "last", "cpu")
    net = run.method.net
    splits = json.loads((Path(run_dir) / "splits.json").read_text())
    crop, fg_prob = run.cfg.train.crop_size, run.cfg.train.foreground_prob
    rng = np.random.default_rng(seed)

    def crops(cases: list[str], prob: float) -> tuple[torch.Tensor, np.ndarray]:
        # memory-mapped: random_crop reads only the crop's window, not the whole volume
        pairs = [random_crop(run.cache.load_image(c), run.cache.load_label(c), crop, rng, prob)
                 for c in cases]
        return torch.from_numpy(np.stack([p[0] for p in pairs])), np.stack([p[1] for p in pairs])

    shares: dict[str, list[float]] = {"alone": [], "with labelled": [], "eval": [], "true": []}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for _ in range(draws):
        labelled, _ = crops(list(rng.choice(splits["labeled"], 2)), fg_prob)
        unlabelled, truth = crops(list(rng.choice(splits["unlabeled"], 2, replace=False)), 0.0)
        with torch.no_grad():
            net.train()
            for m in net.modules():  # batch norm in training mode, dropout off
                if isinstance(m, torch.nn.modules.dropout._DropoutNd):
                    m.eval()
            shares["alone"].append(_fg(net(unlabelled), slice(0, 2)))
            shares["with labelled"].append(_fg(net(torch.cat([labelled, unlabelled])),
                                               slice(2, 4)))
            net.load_state_dict(state)
            net.eval()
            shares["eval"].append(_fg(net(unlabelled), slice(0, 2)))
        shares["true"].append(float((truth > 0).mean()))
    return {k: 100.0 * float(np.mean(v)) for k, v in shares.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--draws", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = ["| run | (a) alone, train mode | (b) with labelled, train mode | (c) eval mode "
            "| true |", "|---|---|---|---|---|"]
    for run in args.runs:
        s = foreground_shares(run, args.draws)
        rows.append(f"| {run.name} | {s['alone']:.1f} | {s['with labelled']:.1f} | "
                    f"{s['eval']:.1f} | {s['true']:.1f} |")
    command = "python benchmarks/teacher_batch_probe.py " + " ".join(sys.argv[1:])
    append_benchmark("Foreground predicted on unlabelled crops, by batch composition",
                     command, "\n".join(rows),
                     f"% of the unlabelled crops' voxels predicted as foreground (mean of the "
                     f"branches, {args.draws} draws of 2 labelled + 2 unlabelled 48³ crops, "
                     "last checkpoint, dropout off).")


if __name__ == "__main__":
    main()
