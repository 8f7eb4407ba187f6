"""Paired Wilcoxon signed-rank tests of each method's per-case Dice against ``ours``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import wilcoxon

from duetseg.reporting.collect import RunRecord

__all__ = ["REFERENCE_METHOD", "WilcoxonResult", "paired_dice", "wilcoxon_vs_reference",
           "compare_to_reference"]

REFERENCE_METHOD = "ours"


@dataclass
class WilcoxonResult:
    """One paired test.

    Attributes:
        method: the compared method.
        labeled: the labelled count both methods were trained with.
        p: two-sided p-value (NaN when the test is not defined, see ``note``).
        n: number of (seed, case) pairs with a finite Dice for both methods.
        statistic: the Wilcoxon statistic (NaN when not computed).
        median_diff: median of ``ours - method`` Dice over the pairs (NaN when n = 0).
        note: why ``p`` is NaN, else empty.
    """

    method: str
    labeled: int
    p: float
    n: int
    statistic: float = math.nan
    median_diff: float = math.nan
    note: str = ""


def paired_dice(reference: list[RunRecord], other: list[RunRecord],
                class_id: int | None = None) -> tuple[list[tuple[int, str]], np.ndarray,
                                                      np.ndarray]:
    """Match per-case Dice (primary outputs) of two methods by (seed, case).

    Args:
        reference: runs of the reference method (one per seed).
        other: runs of the compared method.
        class_id: class to use; None averages the foreground classes.

    Returns:
        The (seed, case) keys, the reference Dice and the other Dice, aligned; pairs with
        a NaN on either side are dropped. Seeds present on one side only are ignored.
    """
    ref_by_seed = {r.seed: r.case_values("dice", class_id=class_id) for r in reference}
    keys: list[tuple[int, str]] = []
    a: list[float] = []
    b: list[float] = []
    for run in sorted(other, key=lambda r: r.seed):
        ref = ref_by_seed.get(run.seed)
        if ref is None:
            continue
        for case, value in run.case_values("dice", class_id=class_id).items():
            if case in ref and math.isfinite(ref[case]) and math.isfinite(value):
                keys.append((run.seed, case))
                a.append(ref[case])
                b.append(value)
    return keys, np.asarray(a, dtype=float), np.asarray(b, dtype=float)


def wilcoxon_vs_reference(reference: list[RunRecord], other: list[RunRecord], method: str,
                          labeled: int, class_id: int | None = None,
                          min_pairs: int = 2) -> WilcoxonResult:
    """Paired two-sided Wilcoxon signed-rank test of ``other`` against ``reference``.

    Uses :func:`scipy.stats.wilcoxon` with its defaults (zero differences dropped,
    exact distribution for small samples).

    Args:
        reference: the reference method's runs at ``labeled``.
        other: the compared method's runs at ``labeled``.
        method: the compared method's name.
        labeled: the labelled count.
        class_id: class to use; None averages the foreground classes.
        min_pairs: fewer pairs than this give p = NaN.

    Returns:
        The test result; p is NaN with a note when there are too few pairs or every
        difference is zero.
    """
    keys, a, b = paired_dice(reference, other, class_id)
    n = len(keys)
    if not reference:
        return WilcoxonResult(method, labeled, math.nan, 0, note=f"no {REFERENCE_METHOD} run")
    if n < min_pairs:
        return WilcoxonResult(method, labeled, math.nan, n,
                              note=f"too few paired cases ({n} < {min_pairs})")
    diff = a - b
    median = float(np.median(diff))
    if not np.any(diff != 0):
        return WilcoxonResult(method, labeled, math.nan, n, median_diff=median,
                              note="identical Dice on every paired case")
    res = wilcoxon(a, b)
    return WilcoxonResult(method, labeled, float(res.pvalue), n, float(res.statistic), median)


def compare_to_reference(runs: list[RunRecord],
                         class_id: int | None = None) -> dict[tuple[str, int], WilcoxonResult]:
    """Test every non-reference method against ``ours`` at each labelled count.

    Args:
        runs: the runs of Table 1 (one per method, labelled count and seed).
        class_id: class to use; None averages the foreground classes.

    Returns:
        (method, labeled) -> result, for every method other than ``ours``.
    """
    groups: dict[tuple[str, int], list[RunRecord]] = {}
    for run in runs:
        groups.setdefault((run.method, run.labeled), []).append(run)
    out = {}
    for (method, labeled), members in groups.items():
        if method == REFERENCE_METHOD:
            continue
        reference = groups.get((REFERENCE_METHOD, labeled), [])
        out[(method, labeled)] = wilcoxon_vs_reference(reference, members, method, labeled,
                                                       class_id)
    return out
