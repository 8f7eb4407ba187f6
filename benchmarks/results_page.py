"""Rebuild BENCHMARKS.md, and the README's accuracy and confirmation tables, from the records in
benchmarks/results (no training, no weights).

Usage: python benchmarks/results_page.py [--check] [--out PATH]
  --check: exit 1 when the committed page or tables differ from what the records give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import REPO

from duetseg.analysis.accuracy import load_protocol_runs
from duetseg.analysis.confirmation import readme_with_confirmation
from duetseg.analysis.page import build_page
from duetseg.analysis.readme_table import readme_with_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    results = REPO / "benchmarks" / "results"
    readme = REPO / "README.md"
    runs = load_protocol_runs(results)
    outputs = {args.out: build_page(results, runs=runs),
               readme: readme_with_confirmation(
                   results, readme_with_table(results, readme.read_text(), runs=runs))}
    for path, text in outputs.items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                sys.exit(f"{path} is stale: run python benchmarks/results_page.py")
            continue
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
