"""Does keeping the largest connected component help? Every evaluated run of the accuracy
protocol whose predictions are on this machine (``runs/cv``, ``runs/confirm``), scored as
predicted and with ``--largest-component``, per configuration and per target.

Usage: python benchmarks/postprocessing.py [--runs runs/cv runs/confirm]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import RUNS, record_tables

from duetseg.analysis.postprocessing import component_effect, component_effect_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", nargs="+", type=Path,
                        default=[RUNS / "cv", RUNS / "confirm"],
                        help="folders of protocol folders of run folders")
    args = parser.parse_args()
    effects = []
    for root in args.runs:
        for run in sorted(root.glob("*/*")):
            if (run / "config.yaml").is_file():
                effect = component_effect(run)
                if effect is not None:
                    effects.append(effect)
    if not effects:
        raise SystemExit(f"no evaluated run with saved predictions under {args.runs}")
    note = ("Each run's Dice is the mean over its test cases of the primary output's "
            "foreground; the change is per run (after − as predicted), its interval a "
            "bootstrap over the runs (3 runs or more). The filter keeps the largest "
            "26-connected foreground component in the original geometry, as "
            "`duetseg evaluate --largest-component` does.")
    record_tables("postprocessing", "largest_component",
                  "Keeping the largest connected component (choosing seeds)",
                  component_effect_table(effects), note)


if __name__ == "__main__":
    main()
