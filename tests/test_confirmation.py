"""The results page's confirmation section, on fake archived runs."""

from __future__ import annotations

from dataclasses import replace

from test_report_gain import _dual, write_run

from duetseg.analysis.accuracy import DEFAULT
from duetseg.analysis.confirmation import (
    CONFIRM_BEGIN,
    CONFIRM_END,
    CONFIRM_QUESTIONS,
    confirmation_section,
    confirmation_table,
    criteria_lines,
    load_confirmation_runs,
    readme_with_confirmation,
)

QUESTION = replace(CONFIRM_QUESTIONS[0], protocol="confirm/P", references=("ref", "strong"),
                   strong="strong", planned_runs=4)
DEFAULT_DICE = [80.0, 70.0, 90.0, 60.0]


def _archive(tmp_path, ref_offset=-10.0, strong_offsets=(-10.0, -12.0, -8.0, -11.0),
             default_low=False):
    """Four default runs (seeds 1-2 x folds 0-1), each reference on every split."""
    root = tmp_path / "confirm" / "P"
    k = 0
    for seed in (1, 2):
        for fold in (0, 1):
            dice = [10.0] * 4 if default_low and k == 0 else DEFAULT_DICE
            write_run(root, f"ours_s{seed}f{fold}", "ours", fold, _dual(dice), name="ours",
                      seed=seed)
            write_run(root, f"ref_s{seed}f{fold}", "ours", fold,
                      _dual([v + ref_offset for v in dice]), name="ref", seed=seed)
            write_run(root, f"strong_s{seed}f{fold}", "supervised", fold,
                      {"prediction": [v + strong_offsets[k] for v in dice]}, name="strong",
                      seed=seed)
            k += 1
    write_run(root, "ref_s9f0", "ours", 0, _dual([0.0] * 4), name="ref", seed=9)
    return tmp_path


def test_runs_off_the_default_splits_are_left_out(tmp_path):
    runs = load_confirmation_runs(_archive(tmp_path), QUESTION)
    assert len(runs) == 12 and {r.name for r in runs} == {DEFAULT, "ref", "strong"}


def test_every_criterion_is_met_when_the_default_leads_every_reference(tmp_path):
    runs = load_confirmation_runs(_archive(tmp_path), QUESTION)
    lines = criteria_lines(runs, QUESTION, 2, n_resamples=200)
    assert lines[0].startswith(f"- {DEFAULT} − ref: +10.0 points per run")
    assert lines[1].startswith(f"- {DEFAULT} − strong: +10.2 points per run")
    assert lines[2].endswith("every reference: met.")
    assert "above 0: met ([+8." in lines[3]
    assert lines[4] == "- No default run below 40 % Dice: met, lowest run 75.0 %."


def test_a_reference_ahead_and_a_collapsed_run_fail_their_criteria(tmp_path):
    runs = load_confirmation_runs(_archive(tmp_path, ref_offset=5.0, default_low=True),
                                  QUESTION)
    lines = criteria_lines(runs, QUESTION, 2, n_resamples=200)
    assert lines[2].endswith("not met, behind ref.")
    assert lines[4].startswith("- No default run below 40 % Dice: not met (1 of 4 runs)")


def test_an_interval_reaching_0_fails_the_strong_reference_criterion(tmp_path):
    archive = _archive(tmp_path, strong_offsets=(-30.0, 10.0, 5.0, -1.0))
    lines = criteria_lines(load_confirmation_runs(archive, QUESTION), QUESTION, 2,
                           n_resamples=200)
    assert "above 0: not met ([" in lines[3]


def test_nothing_is_judged_before_every_planned_run_is_archived(tmp_path):
    question = replace(QUESTION, planned_runs=9)
    lines = criteria_lines(load_confirmation_runs(_archive(tmp_path), question), question, 2,
                           n_resamples=50)
    assert lines[2].endswith("every reference: not judged yet.")
    assert lines[3].endswith("above 0: not judged yet.")
    assert lines[-1] == "- Runs so far (of 9 planned): the default 4, ref 4, strong 4."


def test_the_section_lists_each_target_and_says_when_runs_are_missing(tmp_path):
    text = confirmation_section(_archive(tmp_path), n_resamples=50,
                                questions=(QUESTION, CONFIRM_QUESTIONS[1]))
    assert text.startswith("## Confirmation on fresh seeds")
    assert f"### {QUESTION.title}" in text and f"### {CONFIRM_QUESTIONS[1].title}" in text
    assert "With 2 labelled cases:" in text and "No archived runs." in text
    assert "#### Dice per configuration" in text and "#### Per-run Dice" in text


def test_a_candidate_is_judged_on_its_own_splits_and_paired_with_the_default(tmp_path):
    archive = _archive(tmp_path)
    root = archive / "confirm" / "P"
    for seed, fold in ((1, 0), (2, 1), (3, 0)):
        write_run(root, f"inv_s{seed}f{fold}", "ours", fold, _dual([v + 2 for v in DEFAULT_DICE]),
                  name="ours_inv", seed=seed)
    question = replace(QUESTION, candidates=("ours_inv",))
    runs = load_confirmation_runs(archive, question, "ours_inv")
    assert {(r.name, r.seed) for r in runs if r.name == "ours_inv"} == {
        ("ours_inv", 1), ("ours_inv", 2), ("ours_inv", 3)}
    lines = criteria_lines(runs, question, 2, n_resamples=50, candidate="ours_inv")
    assert lines[0].startswith(f"- ours_inv − {DEFAULT}: +2.0 points per run")
    assert lines[1].startswith("- ours_inv − ref: +12.0 points per run")
    assert "- ours_inv at least level with every reference: not judged yet." in lines
    assert lines[-1] == "- Runs so far (of 4 planned): ours_inv 3, ref 2, strong 2."
    text = confirmation_section(archive, n_resamples=50, questions=(question,))
    assert "The candidate ours_inv, with 2 labelled cases, on its own splits:" in text
    assert "- No ours_inv run below 40 % Dice: met" in text


def test_the_readme_table_pairs_each_configuration_with_t2_alone_and_the_strong_recipe(tmp_path):
    question = replace(QUESTION, references=("ours_t2", "sup_spatial_t2"),
                       strong="sup_spatial_t2", candidates=("ours_t2",))
    root = tmp_path / "confirm" / "P"
    for fold in (0, 1):
        write_run(root, f"ours_f{fold}", "ours", fold, _dual(DEFAULT_DICE), name="ours", seed=3)
        write_run(root, f"t2_f{fold}", "ours", fold, _dual([v - 5 for v in DEFAULT_DICE]),
                  name="ours_t2", seed=3)
    write_run(root, "sup_f0", "supervised", 0, {"prediction": [50.0] * 4},
              name="sup_spatial_t2", seed=3)
    table = confirmation_table(tmp_path, n_resamples=50, questions=(question,))
    rows = {line.split("|")[2].strip(): line for line in table.splitlines()[2:]}
    assert len(table.splitlines()) == 2 + 3  # a candidate that is a reference: one row
    assert table.splitlines()[0].startswith("| target | configuration | what it is | Dice, 2 ")
    assert rows["ours (default)"].startswith("| Tumour core | ours (default) |")
    assert "| 75.0 (75.0, 2) | +5.0 (2) | +25.0 (1) |" in rows["ours (default)"]
    assert "| 50.0 (50.0, 1) | -20.0 (1) | — |" in rows["`sup_spatial_t2`"]
    text = f"a\n{CONFIRM_BEGIN}\nold\n{CONFIRM_END}\nb\n"
    new = readme_with_confirmation(tmp_path, text, 50, (question,))
    assert new.split(CONFIRM_BEGIN)[1].startswith("\n| target |")
    assert confirmation_table(tmp_path / "none", questions=(question,)).startswith("No ")


def test_a_candidate_that_is_also_a_reference_is_not_paired_with_itself(tmp_path):
    archive = _archive(tmp_path)
    question = replace(QUESTION, candidates=("ref",))
    runs = load_confirmation_runs(archive, question, "ref")
    lines = criteria_lines(runs, question, 2, n_resamples=50, candidate="ref")
    assert lines[0].startswith(f"- ref − {DEFAULT}: -10.0 points per run")
    assert lines[1].startswith("- ref − strong:") and not any("ref − ref" in x for x in lines)
    assert "- ref at least level with every reference: met." in lines
    assert lines[-1].startswith("- No ref run below 40 % Dice: not met (1 of 5 runs)")
