"""Rebuild BENCHMARKS.md from the records in benchmarks/results (no training, no weights).

Usage: python benchmarks/results_page.py [--check] [--out PATH]
  --check: exit 1 when the committed page differs from what the records give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import REPO

from duetseg.analysis.page import build_page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = build_page(REPO / "benchmarks" / "results")
    if args.check:
        if not args.out.is_file() or args.out.read_text() != text:
            sys.exit(f"{args.out} is stale: run python benchmarks/results_page.py")
        return
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
