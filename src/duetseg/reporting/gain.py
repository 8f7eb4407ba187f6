"""Gain over a baseline: pooled per-case paired Dice differences, bootstrap CI, Wilcoxon p.

For a baseline configuration B (a :attr:`RunRecord.name`, e.g. ``ours_w0`` or ``supervised``;
by default the bound among the registered methods,
:func:`~duetseg.reporting.roles.default_baseline_method`)
and every other configuration G at the same labelled count, the per-case differences
``G - B`` of Dice (percentage points) are pooled over all pairs matched by
(seed, split, case), so a run is only paired with B's run of the same seed and the same data
split (cross-validation fold). Each output present in both configurations under the same
name (``branch_a``, ``branch_b``, ``ensemble``) is compared, plus a ``primary`` row that
compares each run's primary output (e.g. a single network's ``prediction`` against B's
``ensemble``).

The runs (seed x fold), not the cases, are the independent units of a comparison: a
configuration's gain can come from a few runs where the baseline collapsed. Each result
therefore also holds the run-level figures: the mean over runs of each run's mean
difference, a bootstrap interval that resamples runs, a Wilcoxon p over the runs' mean Dice
and the runs won; the gain table shows them first.

When cases enter several pairs (repeated cross-validation with several seeds), the pairs of
one case are not independent: the table then adds a confidence interval that resamples
test cases (each with all its pairs) and a Wilcoxon p over the per-case mean differences.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from duetseg.errors import ConfigError
from duetseg.reporting.bootstrap import (
    BOOTSTRAP_SEED,
    N_RESAMPLES,
    bootstrap_mean_ci,
    per_case_means,
)
from duetseg.reporting.collect import RunRecord
from duetseg.reporting.roles import default_baseline_method
from duetseg.reporting.stats import paired_dice, paired_wilcoxon
from duetseg.reporting.tables import Table, count_labels, order_methods, table1_runs

__all__ = ["N_RESAMPLES", "BOOTSTRAP_SEED", "GainResult",
           "bootstrap_mean_ci", "default_baseline", "gain_results", "build_gain_table"]

_PRIMARY = "primary"
_RECORD_KEYS = ("name", "baseline", "labeled", "labeled_percent", "output", "output_label",
                "n_pairs", "n_cases", "n_runs", "mean", "mean_baseline", "gain", "ci_low",
                "ci_high", "p_wilcoxon", "statistic", "wins", "ties", "losses", "note",
                "ci_case_low", "ci_case_high", "p_case", "gain_run", "ci_run_low",
                "ci_run_high", "p_run", "runs_won", "runs_lost")


@dataclass
class GainResult:
    """The gain of one configuration over the baseline on one output.

    Attributes:
        name: the compared configuration G.
        baseline: the baseline configuration B.
        labeled: the labelled count of both.
        output: ``primary`` or the output name compared on both sides.
        output_label: display text of the output (with the modality a branch reads).
        n: number of (seed, split, case) pairs with a finite Dice on both sides.
        n_cases: distinct case names among the pairs (< n when seeds repeat a case).
        n_runs: number of matched (seed, split) run pairs contributing.
        mean: mean Dice of G over the pairs (NaN when n = 0).
        mean_baseline: mean Dice of B over the pairs.
        gain: mean of ``G - B`` (percentage points).
        ci_low: lower end of the bootstrap confidence interval of ``gain``.
        ci_high: upper end of it.
        p: paired two-sided Wilcoxon p (NaN when not defined, see ``note``).
        statistic: the Wilcoxon statistic (NaN when not computed).
        wins: pairs with ``G > B``.
        ties: pairs with ``G == B``.
        losses: pairs with ``G < B``.
        note: why ``p`` is NaN, else empty.
        ci_case_low: lower end of the bootstrap interval that resamples cases (each with
            all its pairs); equal to ``ci_low`` when no case repeats.
        ci_case_high: upper end of it.
        p_case: Wilcoxon p over the per-case mean Dice of both sides (equal to ``p`` when no
            case repeats).
        gain_run: mean over the matched runs of each run's mean difference.
        ci_run_low: lower end of the bootstrap interval that resamples runs.
        ci_run_high: upper end of it.
        p_run: Wilcoxon p over the runs' mean Dice of both sides.
        runs_won: runs whose mean difference is above 0.
        runs_lost: runs whose mean difference is below 0.
    """

    name: str
    baseline: str
    labeled: int
    output: str
    output_label: str
    n: int
    n_cases: int
    n_runs: int
    mean: float
    mean_baseline: float
    gain: float
    ci_low: float
    ci_high: float
    p: float
    statistic: float
    wins: int
    ties: int
    losses: int
    note: str = ""
    ci_case_low: float = math.nan
    ci_case_high: float = math.nan
    p_case: float = math.nan
    gain_run: float = math.nan
    ci_run_low: float = math.nan
    ci_run_high: float = math.nan
    p_run: float = math.nan
    runs_won: int = 0
    runs_lost: int = 0


def default_baseline(runs: list[RunRecord]) -> str | None:
    """The default baseline (the registered bound, ``supervised``) when a configuration of
    that name is among the runs of Table 1, else None.

    Raises:
        ConfigError: two runs collide (see :func:`duetseg.reporting.tables.table1_runs`).
    """
    names = {r.name for r in table1_runs(runs)}
    baseline = default_baseline_method()
    return baseline if baseline in names else None


def _output_label(output: str, other: list[RunRecord], base: list[RunRecord]) -> str:
    """``branch_a (t1ce)``; ``primary (ensemble)`` or ``primary (prediction vs ensemble)``."""
    if output == _PRIMARY:
        prim = [list(dict.fromkeys(r.primary_output for r in g)) for g in (other, base)]
        mine, theirs = ("/".join(p) for p in prim)
        return f"{_PRIMARY} ({mine})" if mine == theirs else f"{_PRIMARY} ({mine} vs {theirs})"
    mod = other[0].output_modality(output)  # the same on both sides (:func:`_outputs`)
    return output if mod == output else f"{output} ({mod})"


def _outputs(other: list[RunRecord], base: list[RunRecord]) -> list[str]:
    """``primary``, then the outputs both sides have reading the same input (a branch of one
    modality is not compared with a branch reading another, or every modality), minus one
    equal to the shared primary."""
    def names(group: list[RunRecord]) -> list[str]:
        return list(dict.fromkeys(o for r in group for o in r.outputs))

    prim = {r.primary_output for r in other + base}
    shared = [o for o in names(other) if o in names(base)
              and other[0].output_modality(o) == base[0].output_modality(o)]
    return [_PRIMARY] + [o for o in shared if prim != {o}]


def _compare(name: str, baseline: str, labeled: int, output: str, other: list[RunRecord],
             base: list[RunRecord], class_id: int | None, n_resamples: int,
             seed: int) -> GainResult:
    keys, ref, val = paired_dice(base, other, class_id, None if output == _PRIMARY else output)
    diff = val - ref
    n = int(diff.size)
    low, high = bootstrap_mean_ci(diff, n_resamples, seed=seed)
    p, statistic, note = paired_wilcoxon(val, ref)
    if n == 0:
        note = f"no run shares a seed and split (fold) with {baseline}"
    means = [float(x.mean()) if n else math.nan for x in (val, ref, diff)]
    cases = [k[2] for k in keys]
    case_ci, p_case = (low, high), p
    if len(set(cases)) < n:
        case_ci = bootstrap_mean_ci(diff, n_resamples, seed=seed, groups=cases)
        p_case = paired_wilcoxon(*per_case_means(cases, val, ref))[0]
    runs = [f"{k[0]}|{k[1]}" for k in keys]
    run_val, run_ref = (np.asarray(per_case_means(runs, val, ref)[i]) for i in (0, 1))
    run_diff = run_val - run_ref
    run_gain = float(run_diff.mean()) if n else math.nan
    return GainResult(name, baseline, labeled, output, _output_label(output, other, base), n,
                      len(set(cases)), len(set(runs)), *means, low, high,
                      p, statistic, int((diff > 0).sum()), int((diff == 0).sum()),
                      int((diff < 0).sum()), note, *case_ci, p_case, run_gain,
                      *bootstrap_mean_ci(run_diff, n_resamples, seed=seed),
                      paired_wilcoxon(run_val, run_ref)[0], int((run_diff > 0).sum()),
                      int((run_diff < 0).sum()))


def gain_results(runs: list[RunRecord], baseline: str, class_id: int | None = None,
                 names: list[str] | None = None, n_resamples: int = N_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> list[GainResult]:
    """The gain of every other configuration over ``baseline``, per labelled count and output.

    Args:
        runs: all runs; the runs of Table 1 are used (see
            :func:`duetseg.reporting.tables.table1_runs`).
        baseline: name of the baseline configuration.
        class_id: class; None averages the foreground classes per case.
        names: configurations compared with ``baseline``; None = all others.
        n_resamples: bootstrap resamples of the confidence interval.
        seed: seed of the bootstrap.

    Returns:
        One result per (configuration, labelled count, output), ordered by labelled count,
        configuration (table order) and output (``primary`` first). Counts at which the
        baseline has no run are left out.

    Raises:
        ConfigError: ``baseline`` or a name in ``names`` is not a configuration of the runs,
            or two runs collide (see ``table1_runs``).
    """
    selected = table1_runs(runs)
    groups: dict[tuple[str, int], list[RunRecord]] = {}
    for run in selected:
        groups.setdefault((run.name, run.labeled), []).append(run)
    known = list(dict.fromkeys(r.name for r in selected))
    unknown = [n for n in [baseline, *(names or [])] if n not in known]
    if unknown:
        raise ConfigError(f"{', '.join(map(repr, unknown))} is not the name of a configuration "
                          f"among the runs (names: {', '.join(known)})")
    wanted = [n for n in order_methods(names or known) if n != baseline]
    out = []
    for labeled in sorted({r.labeled for r in selected}):
        base = groups.get((baseline, labeled))
        for name in (n for n in wanted if base and (n, labeled) in groups):
            other = groups[(name, labeled)]
            out += [_compare(name, baseline, labeled, o, other, base, class_id, n_resamples,
                             seed) for o in _outputs(other, base)]
    return out


def _num(value: float, fmt: str) -> str:
    return "n/a" if not math.isfinite(value) else format(value, fmt)


def _interval(low: float, high: float) -> str:
    return f"[{_num(low, '+.2f')}, {_num(high, '+.2f')}]"


def build_gain_table(runs: list[RunRecord], baseline: str, class_id: int | None = None,
                     names: list[str] | None = None, n_resamples: int = N_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> Table:
    """The gain table (see the module docstring and :func:`gain_results`).

    Args:
        runs: all runs.
        baseline: name of the baseline configuration.
        class_id: class; None averages the foreground classes per case.
        names: configurations compared with ``baseline``; None = all others.
        n_resamples: bootstrap resamples of the confidence interval.
        seed: seed of the bootstrap.

    Returns:
        The table: one row per configuration, labelled count and output.

    Raises:
        ConfigError: see :func:`gain_results`.
    """
    results = gain_results(runs, baseline, class_id, names, n_resamples, seed)
    selected = table1_runs(runs)
    labels = count_labels(selected)
    percent = {r.labeled: r.labeled_percent for r in selected}
    headers = ["Configuration", "Labeled", "Output", "runs", "Gain per run (pp)",
               "95% CI, runs resampled (pp)", "p (runs)", "runs W / L", "n pairs", "DSC (%)",
               f"{baseline} DSC (%)", "Gain (pp)", "95% CI (pp)", "p (Wilcoxon)", "W / T / L"]
    repeats = any(r.n_cases < r.n for r in results)
    if repeats:
        headers[13:13] = ["95% CI, cases resampled (pp)"]
        headers.append("p (per-case means)")
    rows, records = [], []
    notes = [f"Run level (the headline): each run (seed, split (fold)) gives the mean of "
             f"its cases' Dice differences to {baseline}'s run on the same split; gain per "
             "run = their mean, its 95% CI a percentile bootstrap over the runs, p (runs) "
             "a paired Wilcoxon over the runs' mean Dice, runs W / L the runs above / below "
             "0. The case-level columns beside it treat every case as independent.",
             f"Gain = configuration − {baseline} per-case Dice in percentage points, pooled "
             "over the cases of all runs paired by (seed, split (fold), case) at the same "
             "labelled count; both means are over the same pairs.",
             f"95% CI: percentile bootstrap of the mean gain ({n_resamples} resamples of the "
             f"pairs, seed {seed}). p: paired two-sided Wilcoxon signed-rank test "
             "(scipy.stats.wilcoxon, zero differences dropped). W / T / L: pairs where the "
             f"configuration is better than / equal to / worse than {baseline}.",
             "primary: each run's scored output (e.g. a single network's prediction against "
             "the baseline's ensemble); other rows compare the same output of both."]
    for res in results:
        label = labels[res.labeled]
        row = [res.name, label, res.output_label, str(res.n_runs),
               _num(res.gain_run, "+.2f"), _interval(res.ci_run_low, res.ci_run_high),
               _num(res.p_run, ".3g"), f"{res.runs_won} / {res.runs_lost}",
               str(res.n), _num(res.mean, ".2f"),
               _num(res.mean_baseline, ".2f"), _num(res.gain, "+.2f"),
               _interval(res.ci_low, res.ci_high), _num(res.p, ".3g"),
               f"{res.wins} / {res.ties} / {res.losses}"]
        if repeats:
            row[13:13] = [_interval(res.ci_case_low, res.ci_case_high)]
            row.append(_num(res.p_case, ".3g"))
        rows.append(row)
        rec = {**asdict(res), "labeled_percent": percent[res.labeled], "n_pairs": res.n,
               "p_wilcoxon": res.p}
        records.append({k: rec[k] for k in _RECORD_KEYS})
        if res.note:
            notes.append(f"{res.name} at {label}, {res.output_label}: p n/a, {res.note}")
    if repeats:
        notes.append("Some cases enter several pairs (several seeds, or splits sharing test "
                     "cases): the first CI and p treat all pairs as independent; the CI with "
                     "cases resampled draws whole test cases (each with all its pairs) and "
                     "the last p compares the per-case mean Dice of both sides, so a case "
                     "counts once.")
    if not results:
        notes.append(f"No other configuration shares a labelled count with {baseline}.")
    return Table(f"Gain over {baseline} (per-case paired Dice)", headers, rows, records,
                 notes)
