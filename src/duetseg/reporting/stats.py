"""Paired Wilcoxon signed-rank tests of each configuration's per-case Dice against a reference.

Configurations are told apart by :attr:`RunRecord.name`; pairs are matched by
(seed, split, case), so a run is only paired with the run of the other configuration that has
the same seed and the same data split (the same cross-validation fold). The default reference
is the registered method of role ``proposed`` (``REFERENCE_METHOD``, looked up on access).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import wilcoxon

from duetseg.reporting.collect import RunRecord
from duetseg.reporting.roles import reference_method

__all__ = ["PairKey", "WilcoxonResult", "paired_dice", "paired_wilcoxon",
           "wilcoxon_vs_reference", "compare_to_reference"]



def __getattr__(name: str) -> str:
    """``REFERENCE_METHOD``: the default reference, the registered method of role
    ``proposed`` (:func:`~duetseg.reporting.roles.reference_method`), looked up on access."""
    if name == "REFERENCE_METHOD":
        return reference_method()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PairKey = tuple[int, str, str]
"""(seed, split_key, case) of one pair."""


@dataclass
class WilcoxonResult:
    """One paired test.

    Attributes:
        method: the compared configuration (its :attr:`RunRecord.name`).
        labeled: the labelled count both configurations were trained with.
        p: two-sided p-value (NaN when the test is not defined, see ``note``).
        n: number of (seed, split, case) pairs with a finite Dice on both sides.
        statistic: the Wilcoxon statistic (NaN when not computed).
        median_diff: median of ``reference - method`` Dice over the pairs (NaN when n = 0).
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
                class_id: int | None = None,
                output: str | None = None) -> tuple[list[PairKey], np.ndarray, np.ndarray]:
    """Match per-case Dice of two configurations by (seed, split, case).

    Args:
        reference: runs of the reference configuration (one per seed and split).
        other: runs of the compared configuration.
        class_id: class to use; None averages the foreground classes.
        output: output compared on both sides; None = each run's primary output.

    Returns:
        The (seed, split_key, case) keys, the reference Dice and the other Dice, aligned;
        pairs with a NaN on either side are dropped. Runs whose (seed, split) has no
        counterpart on the other side are ignored.
    """
    ref_by_run = {(r.seed, r.split_key): r.case_values("dice", output, class_id)
                  for r in reference}
    keys: list[PairKey] = []
    a: list[float] = []
    b: list[float] = []
    for run in sorted(other, key=lambda r: (r.seed, r.split_key)):
        ref = ref_by_run.get((run.seed, run.split_key))
        if ref is None:
            continue
        for case, value in run.case_values("dice", output, class_id).items():
            if case in ref and math.isfinite(ref[case]) and math.isfinite(value):
                keys.append((run.seed, run.split_key, case))
                a.append(ref[case])
                b.append(value)
    return keys, np.asarray(a, dtype=float), np.asarray(b, dtype=float)


def paired_wilcoxon(a: np.ndarray, b: np.ndarray,
                    min_pairs: int = 2) -> tuple[float, float, str]:
    """Two-sided Wilcoxon signed-rank test of paired samples, NaN where it is not defined.

    Uses :func:`scipy.stats.wilcoxon` with its defaults (zero differences dropped, exact
    distribution for small samples).

    Args:
        a: first sample.
        b: second sample, aligned with ``a``.
        min_pairs: fewer pairs than this give p = NaN.

    Returns:
        (p, statistic, note): p and statistic are NaN, with the reason in ``note``, when there
        are too few pairs or every difference is zero; ``note`` is empty otherwise.
    """
    n = len(a)
    if n < min_pairs:
        return math.nan, math.nan, f"too few paired cases ({n} < {min_pairs})"
    if not np.any(np.asarray(a) != np.asarray(b)):
        return math.nan, math.nan, "identical Dice on every paired case"
    res = wilcoxon(a, b)
    return float(res.pvalue), float(res.statistic), ""


def wilcoxon_vs_reference(reference: list[RunRecord], other: list[RunRecord], method: str,
                          labeled: int, class_id: int | None = None, min_pairs: int = 2,
                          reference_name: str | None = None) -> WilcoxonResult:
    """Paired two-sided Wilcoxon signed-rank test of ``other`` against ``reference``.

    See :func:`paired_wilcoxon` for the test and :func:`paired_dice` for the pairing.

    Args:
        reference: the reference configuration's runs at ``labeled``.
        other: the compared configuration's runs at ``labeled``.
        method: the compared configuration's name.
        labeled: the labelled count.
        class_id: class to use; None averages the foreground classes.
        min_pairs: fewer pairs than this give p = NaN.
        reference_name: the reference's name (for the note when it has no run); None = the
            proposed method.

    Returns:
        The test result; p is NaN with a note when there is no reference run, too few pairs
        or every difference is zero.
    """
    keys, a, b = paired_dice(reference, other, class_id)
    n = len(keys)
    if not reference:
        name = reference_method() if reference_name is None else reference_name
        return WilcoxonResult(method, labeled, math.nan, 0, note=f"no {name} run")
    median = float(np.median(a - b)) if n else math.nan
    p, statistic, note = paired_wilcoxon(a, b, min_pairs)
    return WilcoxonResult(method, labeled, p, n, statistic, median, note)


def compare_to_reference(runs: list[RunRecord], class_id: int | None = None,
                         reference: str | None = None,
                         ) -> dict[tuple[str, int], WilcoxonResult]:
    """Test every other configuration against ``reference`` at each labelled count.

    Args:
        runs: the runs of Table 1 (one per name, labelled count, seed and split).
        class_id: class to use; None averages the foreground classes.
        reference: name of the reference configuration; None = the proposed method.

    Returns:
        (name, labeled) -> result, for every configuration other than ``reference``.
    """
    reference = reference_method() if reference is None else reference
    groups: dict[tuple[str, int], list[RunRecord]] = {}
    for run in runs:
        groups.setdefault((run.name, run.labeled), []).append(run)
    out = {}
    for (name, labeled), members in groups.items():
        if name == reference:
            continue
        ref_runs = groups.get((reference, labeled), [])
        out[(name, labeled)] = wilcoxon_vs_reference(ref_runs, members, name, labeled,
                                                     class_id, reference_name=reference)
    return out
