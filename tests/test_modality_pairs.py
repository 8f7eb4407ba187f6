"""The results page's "when a second modality pays" section, on fake archived runs."""

from __future__ import annotations

from dataclasses import replace

from test_report_gain import _dual, write_run

from duetseg.analysis.modality_pairs import (
    PAIR_QUESTIONS,
    load_question_runs,
    modality_pairs_section,
    pair_reading,
)

QUESTION = replace(PAIR_QUESTIONS[0], protocol="cv/P")
PAIR = [[80.0, 70.0, 90.0, 60.0], [85.0, 75.0, 65.0, 95.0]]


def _archive(tmp_path, single_folds=(0, 1)):
    root = tmp_path / "cv" / "P"
    for fold in (0, 1):
        write_run(root, f"pair_f{fold}", "ours", fold, _dual(PAIR[fold]), name=QUESTION.pair)
    for fold in single_folds:  # the first single scores 10 points below the pair everywhere
        write_run(root, f"single_f{fold}", "ours", fold,
                  _dual([v - 10 for v in PAIR[fold]]), name=QUESTION.singles[0])
    # a single-modality run on a split the pair was not trained on (another seed)
    write_run(root, "single_s9", "ours", 0, _dual([0.0] * 4), name=QUESTION.singles[0],
              seed=9)
    write_run(root, "unrelated_f0", "ours", 0, _dual([0.0] * 4), name="something_else")
    return tmp_path


def test_only_the_question_runs_on_the_pair_splits_are_loaded(tmp_path):
    runs = load_question_runs(_archive(tmp_path), QUESTION)
    assert sorted(r.run_dir.name for r in runs) == ["pair_f0", "pair_f1", "single_f0",
                                                    "single_f1"]


def test_the_reading_quotes_the_run_level_gain_over_each_single(tmp_path):
    runs = load_question_runs(_archive(tmp_path), QUESTION)
    text = pair_reading(runs, QUESTION, n_resamples=50)
    assert text.startswith(f"- {QUESTION.pair} − {QUESTION.singles[0]}: +10.0 points per run")
    assert "2 of 2 runs won" in text and f"− {QUESTION.singles[1]}:" not in text


def test_the_reading_also_quotes_the_gain_over_the_references_after_the_singles(tmp_path):
    archive = _archive(tmp_path)
    reference = QUESTION.others[-1]
    write_run(archive / "cv" / "P", "reference_f0", "ours", 0,
              _dual([v - 20 for v in PAIR[0]]), name=reference)
    lines = pair_reading(load_question_runs(archive, QUESTION), QUESTION,
                         n_resamples=50).splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"- {QUESTION.pair} − {QUESTION.singles[0]}")
    assert lines[1].startswith(f"- {QUESTION.pair} − {reference}: +20.0 points per run")
    assert "(1 of 1 runs won" in lines[1]  # no interval from fewer than 3 runs


def test_the_section_has_each_question_and_says_when_runs_are_missing(tmp_path):
    questions = (QUESTION, PAIR_QUESTIONS[1])
    text = modality_pairs_section(_archive(tmp_path, single_folds=(0,)), n_resamples=50,
                                  questions=questions)
    assert text.startswith("## When a second modality pays")
    assert all(f"### {q.title}" in text for q in questions)
    assert "No archived runs." in text  # the other question's folder does not exist here
    assert "1 of 1 runs won" in text
    assert "#### Dice per configuration" in text and "#### Per-run Dice" in text
