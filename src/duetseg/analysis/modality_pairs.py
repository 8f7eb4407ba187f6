"""Results-page section: when does a second modality pay?

Cross pseudo-labelling between two modality branches assumes that each modality alone
shows the target. The section tests that assumption on the accuracy protocol (2 labelled
cases, the splits of ``cv_L2``) with two questions: the whole tumour with FLAIR + T2 (both
show the oedema) and the tumour core (necrosis and enhancing tumour, BraTS labels 1 and 4)
with T1ce + T2 (on T1ce the enhancing rim is bright and the necrosis dark, so cores that
are mostly one or the other look unlike each other). Each pairs the two-modality run
with the same objective on either modality alone (two branches reading that modality),
split by split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from duetseg.analysis.accuracy import DEFAULT, load_protocol_runs
from duetseg.analysis.readme_table import MIN_RUNS_FOR_CI
from duetseg.reporting.bootstrap import N_RESAMPLES
from duetseg.reporting.collect import RunRecord
from duetseg.reporting.gain import GainResult, gain_results
from duetseg.reporting.run_table import build_run_table
from duetseg.reporting.tables import build_table1

__all__ = ["PairQuestion", "PAIR_QUESTIONS", "runs_on_splits_of", "on_splits_of",
           "load_question_runs",
           "gain_lines", "dice_tables", "pair_reading", "modality_pairs_section"]


@dataclass(frozen=True)
class PairQuestion:
    """One question of the section.

    Attributes:
        title: the subsection heading.
        protocol: the archived folder under the results folder.
        pair: the two-modality configuration.
        singles: the same objective on each modality alone.
        others: further configurations shown beside them (labelled-only references,
            variants of the pair).
        grids: the grids that train the runs (``benchmarks/grids/<grid>.yaml``).
    """

    title: str
    protocol: str
    pair: str
    singles: tuple[str, ...]
    others: tuple[str, ...]
    grids: tuple[str, ...]


PAIR_QUESTIONS = (
    PairQuestion("Whole tumour with FLAIR + T2 (both show the oedema)",
                 "cv/K3_L2_1000it_zscore_nonzero", "ours_flair_t2",
                 ("ours_t2", "ours_flair"), (DEFAULT, "sup_spatial_t2"),
                 ("cv_L2_flair_t2", "cv_L2_flair", "cv_L2_t2", "cv_L2")),
    PairQuestion("Tumour core with T1ce + T2 (bright rim and dark necrosis on T1ce)",
                 "cv/K3_L2_1000it_tc_zscore_nonzero", DEFAULT,
                 ("ours_t1ce", "ours_t2"),
                 ("ours_inv", "sup_spatial", "sup_spatial_t1ce", "sup_spatial_t2"),
                 ("cv_L2_tc", "cv_L2_tc_t1ce", "cv_L2_tc_t2")),
)


def runs_on_splits_of(results: Path, protocol: str, anchor: str,
                      names: set[str]) -> list[RunRecord]:
    """The archived runs of ``names`` on the splits where ``anchor`` has a run.

    Args:
        results: the results folder (``benchmarks/results``).
        protocol: the archived folder under ``results``.
        anchor: the configuration whose splits are kept (one of ``names``).
        names: the configurations to load (display names, see
            :func:`~duetseg.analysis.accuracy.load_protocol_runs`).

    Returns:
        The runs, limited to the anchor's (labelled count, seed, split) so that every
        configuration is averaged over the same runs (empty without anchor runs).
    """
    return on_splits_of([r for r in load_protocol_runs(results, (protocol,)) if r.name in names],
                        anchor)


def on_splits_of(runs: list[RunRecord], anchor: str) -> list[RunRecord]:
    """``runs`` limited to the (labelled count, seed, split) where ``anchor`` has a run."""
    splits = {(r.labeled, r.seed, r.split_key) for r in runs if r.name == anchor}
    return [r for r in runs if (r.labeled, r.seed, r.split_key) in splits]


def load_question_runs(results: Path, question: PairQuestion) -> list[RunRecord]:
    """The question's archived runs on the splits where its pair has a run.

    Args:
        results: the results folder (``benchmarks/results``).
        question: the question.

    Returns:
        The runs of the pair, the singles and the others, limited to the pair's splits
        (:func:`runs_on_splits_of`).
    """
    names = {question.pair, *question.singles, *question.others}
    return runs_on_splits_of(results, question.protocol, question.pair, names)


def gain_lines(runs: list[RunRecord], name: str, baselines: tuple[str, ...],
               n_resamples: int = N_RESAMPLES) -> list[tuple[GainResult, str]]:
    """``name``'s run-level gain over each baseline that has matched runs, as list items.

    Args:
        runs: the runs (one labelled count, or the items repeat per count).
        name: the compared configuration.
        baselines: the baselines, in output order.
        n_resamples: bootstrap resamples.

    Returns:
        (gain, Markdown list item) per baseline and labelled count; no interval over fewer
        than :data:`~duetseg.analysis.readme_table.MIN_RUNS_FOR_CI` runs.
    """
    out = []
    for other in baselines:
        if not any(r.name == other for r in runs):
            continue
        for g in gain_results(runs, other, names=[name], n_resamples=n_resamples):
            if g.output != "primary":
                continue
            ci = (f"95 % CI [{g.ci_run_low:+.1f}, {g.ci_run_high:+.1f}], "
                  if g.n_runs >= MIN_RUNS_FOR_CI else "")
            out.append((g, f"- {name} − {other}: {g.gain_run:+.1f} points per run "
                           f"({ci}{g.runs_won} of {g.n_runs} runs won; {g.mean:.1f} against "
                           f"{g.mean_baseline:.1f} % Dice over {g.n} cases)."))
    return out


def dice_tables(runs: list[RunRecord], reference: str) -> list[str]:
    """Table 1 ("Dice per configuration", p against ``reference``) and the per-run table,
    as Markdown subsections."""
    table1 = build_table1(runs, reference=reference)
    table1.title = "Dice per configuration"
    return [table1.to_markdown(level=4).strip(),
            build_run_table(runs).to_markdown(level=4).strip()]


def pair_reading(runs: list[RunRecord], question: PairQuestion,
                 n_resamples: int = N_RESAMPLES) -> str:
    """One line per other configuration: the pair's run-level gain over it.

    Args:
        runs: :func:`load_question_runs`.
        question: the question.
        n_resamples: bootstrap resamples.

    Returns:
        A Markdown list, the single modalities first, then the others (empty when no
        configuration has a matched run); no interval over fewer than
        :data:`~duetseg.analysis.readme_table.MIN_RUNS_FOR_CI` runs.
    """
    items = gain_lines(runs, question.pair, (*question.singles, *question.others), n_resamples)
    return "\n".join(line for _, line in items)


def modality_pairs_section(results: Path, n_resamples: int = N_RESAMPLES,
                           questions: tuple[PairQuestion, ...] = PAIR_QUESTIONS) -> str:
    """The section: per question, the reading, Table 1 and the per-run table.

    Args:
        results: the results folder (``benchmarks/results``).
        n_resamples: bootstrap resamples of the run-level gains.
        questions: the questions, in order.

    Returns:
        Markdown, from the section's heading.
    """
    parts = ["## When a second modality pays",
             "Cross pseudo-labelling between modality branches assumes that each modality "
             "alone shows the target. Each question pairs the two-modality run with the "
             "same objective on either modality alone (two branches reading it) on the same "
             "splits: 2 labelled cases, the protocol of the accuracy section, only the "
             "splits the two-modality configuration was trained on."]
    for question in questions:
        runs = load_question_runs(results, question)
        parts.append(f"### {question.title}")
        if not runs:
            parts.append("No archived runs.")
            continue
        grids = ", ".join(f"`{g}`" for g in question.grids)
        parts += [pair_reading(runs, question, n_resamples) or "No matched runs yet.",
                  f"Regenerate: the grids {grids} (`duetseg experiment-run GRID RUN` for "
                  "the runs listed below), `python benchmarks/archive_runs.py` on them and "
                  "`python benchmarks/results_page.py`.",
                  *dice_tables(runs, question.pair)]
    return "\n\n".join(parts) + "\n"
