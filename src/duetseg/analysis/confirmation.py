"""Results-page section: the default against the references on the confirmation seeds.

The rule of ``docs/evaluation.md``: a default is chosen on seeds 0-2 and confirmed on seeds
3-5, which no choice has seen. For each target the section pairs the default with every
reference a user would pick instead, run by run on the default's splits, and checks the
confirmation criteria per labelled count: the default's Dice at least that of every
reference, at 2 labelled cases a run-level 95 % interval of its gain over the strong
labelled-only recipe above 0, and no default run below
:data:`~duetseg.reporting.run_table.COLLAPSE_FLOOR`. A criterion is only judged once every
planned run of the default and of the references is archived.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from duetseg.analysis.accuracy import CONTROL, DEFAULT, PAPER
from duetseg.analysis.modality_pairs import dice_tables, gain_lines, runs_on_splits_of
from duetseg.reporting.bootstrap import N_RESAMPLES
from duetseg.reporting.collect import RunRecord
from duetseg.reporting.run_table import COLLAPSE_FLOOR, run_means

__all__ = ["ConfirmQuestion", "CONFIRM_QUESTIONS", "load_confirmation_runs",
           "criteria_lines", "confirmation_section"]

# the labelled count at which the gain over the strong labelled-only recipe must be shown
STRICT_LABELED = 2


@dataclass(frozen=True)
class ConfirmQuestion:
    """One target's confirmation.

    Attributes:
        title: the subsection heading.
        protocol: the archived folder under the results folder.
        references: what a user would pick instead, in output order.
        strong: the strong labelled-only recipe (its interval must clear 0).
        grids: the grids that train the runs (``benchmarks/grids/<grid>.yaml``).
        planned_runs: runs per configuration and labelled count (seeds x folds).
        shown: further configurations shown in the tables, not judged against.
        candidates: configurations judged by the same criteria as the default, each on its
            own splits and paired with the default as well as the references.
    """

    title: str
    protocol: str
    references: tuple[str, ...]
    strong: str
    grids: tuple[str, ...]
    planned_runs: int = 9
    shown: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()


CONFIRM_QUESTIONS = (
    ConfirmQuestion("Tumour core, T1ce + T2", "confirm/K3_1000it_tc_zscore_nonzero",
                    ("ours_t2", "mt_t2", "sup_spatial_t2", "sup_spatial"), "sup_spatial_t2",
                    ("confirm_tc", "confirm_tc_t2"), candidates=("ours_inv",)),
    ConfirmQuestion("Whole tumour, T1ce + T2", "confirm/K3_1000it_zscore_nonzero",
                    ("ours_t2", "mt_t2", "mt_t1ce", "sup_spatial_t2", "sup_duet_spatial",
                     "ours_all"), "sup_spatial_t2",
                    ("confirm_L2_L4", "confirm_L2_L4_t2", "confirm_L2_L4_t1ce"),
                    shown=(PAPER, CONTROL)),
)


def load_confirmation_runs(results: Path, question: ConfirmQuestion,
                           anchor: str = DEFAULT) -> list[RunRecord]:
    """The question's archived runs on the splits of ``anchor``.

    Args:
        results: the results folder (``benchmarks/results``).
        question: the question.
        anchor: the default or one of the question's candidates.

    Returns:
        The runs of the default, the candidates, the references and the shown
        configurations.
    """
    names = {DEFAULT, *question.candidates, *question.references, *question.shown}
    return runs_on_splits_of(results, question.protocol, anchor, names)


def criteria_lines(runs: list[RunRecord], question: ConfirmQuestion, labeled: int,
                   n_resamples: int = N_RESAMPLES, candidate: str = DEFAULT) -> list[str]:
    """The gains over the references and the criteria, for one labelled count.

    Args:
        runs: :func:`load_confirmation_runs` anchored on ``candidate``.
        question: the question.
        labeled: the labelled count.
        n_resamples: bootstrap resamples.
        candidate: the default or one of the question's candidates.

    Returns:
        Markdown list items: one gain per reference with runs (a candidate's over the
        default first), then one per criterion (met, not met, or not judged yet), and
        while runs are missing, how many each has.
    """
    runs = [r for r in runs if r.labeled == labeled]
    default = [run_means(r) for r in runs if r.name == candidate]
    first = () if candidate == DEFAULT else (DEFAULT,)
    items = gain_lines(runs, candidate, (*first, *question.references), n_resamples)
    lines = [line for _, line in items]
    gains = {g.baseline: g for g, _ in items if g.baseline in question.references}
    who = "the default" if candidate == DEFAULT else candidate
    subject = "The default" if candidate == DEFAULT else candidate
    count = {n: sum(r.name == n for r in runs) for n in question.references}
    missing = [f"{n} {count[n]}" for n in question.references
               if count[n] < question.planned_runs]
    complete = len(default) >= question.planned_runs and not missing
    behind = [n for n, g in gains.items() if g.gain_run < 0]
    lines.append(f"- {subject} at least level with every reference: " + (
        ("not met, behind " + ", ".join(behind) + "." if behind else "met.")
        if complete else "not judged yet."))
    if labeled == STRICT_LABELED:
        g = gains.get(question.strong)
        verdict = ("not judged yet." if not complete or g is None else
                   ("met" if g.ci_run_low > 0 else "not met")
                   + f" ([{g.ci_run_low:+.1f}, {g.ci_run_high:+.1f}]).")
        lines.append(f"- The run-level 95 % CI of the gain over {question.strong} above 0: "
                     + verdict)
    low = [d for d in default if d < COLLAPSE_FLOOR]
    floor = (f"- No {who.removeprefix('the ')} run below {COLLAPSE_FLOOR:g} % Dice: "
             + ("met" if not low else f"not met ({len(low)} of {len(default)} runs)"))
    lines.append(floor + (f", lowest run {min(default):.1f} %." if default else "."))
    if not complete:
        lines.append(f"- Runs so far (of {question.planned_runs} planned): "
                     f"{who} {len(default)}"
                     + "".join(f", {m}" for m in missing) + ".")
    return lines


def confirmation_section(results: Path, n_resamples: int = N_RESAMPLES,
                         questions: tuple[ConfirmQuestion, ...] = CONFIRM_QUESTIONS) -> str:
    """The section: per target and labelled count the criteria, then Table 1 and the runs.

    Args:
        results: the results folder (``benchmarks/results``).
        n_resamples: bootstrap resamples of the run-level gains.
        questions: the targets, in order.

    Returns:
        Markdown, from the section's heading.
    """
    parts = ["## Confirmation on fresh seeds",
             "The default, and each candidate the choosing seeds 0-2 put forward, against "
             "what a user would pick instead, on seeds 3-5 (new folds, labelled draws and "
             "training seeds that no choice has used; docs/evaluation.md), 3-fold "
             "cross-validation, 2 and 4 labelled cases. Each gain pairs two runs on the "
             "same split."]
    for question in questions:
        runs = load_confirmation_runs(results, question)
        grids = " ".join(f"benchmarks/grids/{g}.yaml" for g in question.grids)
        parts += [f"### {question.title}",
                  f"Regenerate: `duetseg experiment GRID` for each of {grids}, "
                  f"`python benchmarks/archive_runs.py {grids}` and "
                  "`python benchmarks/results_page.py`."]
        if not runs:
            parts.append("No archived runs.")
            continue
        for labeled in sorted({r.labeled for r in runs}):
            parts += [f"With {labeled} labelled cases:",
                      "\n".join(criteria_lines(runs, question, labeled, n_resamples))]
            for candidate in question.candidates:
                own = [r for r in load_confirmation_runs(results, question, candidate)
                       if r.labeled == labeled]
                if own:
                    parts += [f"The candidate {candidate}, with {labeled} labelled cases, "
                              "on its own splits:",
                              "\n".join(criteria_lines(own, question, labeled, n_resamples,
                                                        candidate))]
        parts += dice_tables(runs, DEFAULT)
    return "\n\n".join(parts) + "\n"
