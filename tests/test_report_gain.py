"""Cross-validation folds and named configurations in reports; the gain-over-a-baseline table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from _cli import cli_error_line
from scipy.stats import wilcoxon

from duetseg.cli import main
from duetseg.config import Config
from duetseg.errors import ConfigError
from duetseg.evaluation.summary import summarize, write_metrics_csv
from duetseg.reporting.collect import collect_runs
from duetseg.reporting.gain import N_RESAMPLES, bootstrap_mean_ci, build_gain_table, gain_results
from duetseg.reporting.report import make_report
from duetseg.reporting.stats import paired_dice
from duetseg.reporting.tables import build_table1, build_table2

LABELLED = [f"c{i:02d}" for i in range(12)]
FOLD_TEST = {0: LABELLED[:4], 1: LABELLED[4:8]}
FOLD_LAB = {0: LABELLED[8:10], 1: LABELLED[10:12]}
DUAL = {"branch_a": "branch reading t1ce", "branch_b": "branch reading t2",
        "ensemble": "mean of the branches' softmax"}


def write_run(root: Path, dirname: str, method: str, fold: int, dice: dict[str, list[float]],
              name: str | None = None, seed: int = 1, weight: float | None = None,
              test: list[str] | None = None, labeled: list[str] | None = None,
              mcml: bool = True) -> Path:
    """A fake evaluated run of ``fold`` (of 2) with the given per-case Dice per output.

    ``dice[output][k]`` is the Dice of the k-th test case; the primary output is
    ``ensemble`` for a dual-branch run, else the only output.
    """
    run = root / dirname
    run.mkdir(parents=True)
    cfg = Config.model_validate({
        "name": name, "splits": {"labeled": 2, "folds": 2, "fold": fold, "val": 0},
        "method": {"name": method, "consistency_weight": weight, "mcml": mcml},
        "train": {"seed": seed}})
    (run / "config.yaml").write_text(cfg.to_yaml())
    test = FOLD_TEST[fold] if test is None else test
    labeled = FOLD_LAB[fold] if labeled is None else labeled
    train = [c for c in LABELLED if c not in test]
    (run / "splits.json").write_text(json.dumps({
        "train": train, "val": [], "test": test, "labeled": labeled,
        "unlabeled": [c for c in train if c not in labeled]}))
    outputs = {o: DUAL.get(o, "one network") for o in dice}
    primary = "ensemble" if "ensemble" in dice else next(iter(dice))
    rows = [{"case": case, "output": out, "class": 1, "dice": float(values[k]), "asd": 1.0,
             "assd": 1.0, "hd95": 2.0}
            for out, values in dice.items() for k, case in enumerate(test)]
    write_metrics_csv(rows, run / "eval" / "test" / "metrics.csv")
    (run / "eval" / "test" / "summary.json").write_text(json.dumps({
        "method": method, "primary_output": primary, "outputs": outputs,
        "metrics": summarize(rows)}))
    return run


def _dual(ens: list[float], a: list[float] | None = None,
          b: list[float] | None = None) -> dict[str, list[float]]:
    return {"branch_a": a or [v - 5 for v in ens], "branch_b": b or [v - 3 for v in ens],
            "ensemble": ens}


# Per fold: ensemble Dice of ours and ours_w0, prediction of ict (4 test cases per fold).
OURS = {0: [80.0, 70.0, 90.0, 60.0], 1: [85.0, 75.0, 65.0, 95.0]}
W0 = {0: [78.0, 71.0, 84.0, 60.0], 1: [80.0, 77.0, 60.0, 90.0]}
ICT = {0: [70.0, 72.0, 88.0, 50.0], 1: [81.0, 70.0, 66.0, 91.0]}


@pytest.fixture()
def cv_runs(tmp_path) -> list[Path]:
    """2 folds x (ours, ours_w0 = ours with weight 0, ict)."""
    dirs = []
    for fold in (0, 1):
        dirs.append(write_run(tmp_path, f"ours_f{fold}", "ours", fold, _dual(OURS[fold])))
        dirs.append(write_run(tmp_path, f"w0_f{fold}", "ours", fold, _dual(W0[fold]),
                              name="ours_w0", weight=0.0))
        dirs.append(write_run(tmp_path, f"ict_f{fold}", "ict", fold,
                              {"prediction": ICT[fold]}))
    return dirs


def _result(results, name, output):
    return next(r for r in results if (r.name, r.output) == (name, output))


def test_name_and_split_key(cv_runs):
    runs = collect_runs(cv_runs)
    by_dir = {r.run_dir.name: r for r in runs}
    assert by_dir["w0_f0"].name == "ours_w0" and by_dir["w0_f0"].method == "ours"
    assert by_dir["ours_f0"].name == "ours" and by_dir["ict_f1"].name == "ict"
    assert by_dir["ours_f0"].split_key == by_dir["w0_f0"].split_key == by_dir["ict_f0"].split_key
    assert by_dir["ours_f0"].split_key != by_dir["ours_f1"].split_key
    # weight 0: the labelled-only control, no MCML in Table 2
    assert by_dir["w0_f1"].label == "ours_w0 25% s1 f1 [-MCML]" and not by_dir["w0_f1"].mcml
    assert by_dir["ours_f1"].mcml


def test_gain_mean_wilcoxon_and_counts(cv_runs):
    results = gain_results(collect_runs(cv_runs), "ours_w0")
    assert {(r.name, r.output) for r in results} == {
        ("ours", "primary"), ("ours", "branch_a"), ("ours", "branch_b"), ("ict", "primary")}
    prim = _result(results, "ours", "primary")
    g = np.array(OURS[0] + OURS[1])
    b = np.array(W0[0] + W0[1])
    diff = g - b
    assert prim.n == 8 and prim.n_runs == 2 and prim.output_label == "primary (ensemble)"
    assert prim.gain == pytest.approx(diff.mean())
    assert (prim.mean, prim.mean_baseline) == (pytest.approx(g.mean()), pytest.approx(b.mean()))
    assert prim.p == pytest.approx(wilcoxon(g, b).pvalue)
    assert (prim.wins, prim.ties, prim.losses) == (5, 1, 2)
    assert prim.ci_low <= prim.gain <= prim.ci_high and prim.ci_low < prim.ci_high
    # the documented percentile bootstrap with the fixed seed (reproducible)
    idx = np.random.default_rng(0).integers(0, 8, size=(N_RESAMPLES, 8))
    lo, hi = np.percentile(diff[idx].mean(axis=1), [2.5, 97.5])
    assert (prim.ci_low, prim.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    # a single network's prediction against the baseline's primary output (ensemble)
    ict = _result(results, "ict", "primary")
    assert ict.output_label == "primary (prediction vs ensemble)"
    assert ict.gain == pytest.approx(np.mean(np.array(ICT[0] + ICT[1]) - b))
    branch = _result(results, "ours", "branch_a")
    assert branch.output_label == "branch_a (t1ce)"
    assert branch.gain == pytest.approx(diff.mean())  # branch_a = ensemble - 5 on both sides


def test_bootstrap_ci_width_and_degenerate_cases():
    rng = np.random.default_rng(3)
    noise = rng.normal(size=40)
    narrow = bootstrap_mean_ci(2.0 + 0.1 * noise)
    wide = bootstrap_mean_ci(2.0 + 3.0 * noise)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert narrow[0] < 2.0 + 0.1 * noise.mean() < narrow[1]
    assert bootstrap_mean_ci(np.full(7, 1.5)) == (1.5, 1.5)
    assert all(math.isnan(v) for v in bootstrap_mean_ci(np.array([])))
    assert bootstrap_mean_ci(noise) == bootstrap_mean_ci(noise)


def test_case_bootstrap_counts_a_repeated_case_once():
    rng = np.random.default_rng(5)
    values = rng.normal(2.0, 3.0, size=12)
    cases = [f"c{i:02d}" for i in range(12)]
    # each case twice with the same value: resampling cases is resampling the 12 values
    doubled = np.repeat(values, 2)
    assert bootstrap_mean_ci(doubled, groups=np.repeat(cases, 2)) == bootstrap_mean_ci(values)
    # treating the 24 copies as independent pairs gives a narrower (overconfident) interval
    pooled = bootstrap_mean_ci(doubled)
    clustered = bootstrap_mean_ci(doubled, groups=np.repeat(cases, 2))
    assert pooled[1] - pooled[0] < 0.8 * (clustered[1] - clustered[0])
    with pytest.raises(ValueError, match="groups"):
        bootstrap_mean_ci(values, groups=cases[:5])


def test_repeated_cases_add_a_case_resampled_interval_and_p(tmp_path):
    """Two seeds of the same 2-fold partition: every test case enters two pairs."""
    dirs = []
    for seed in (1, 2):
        for fold in (0, 1):
            shift = 0.0 if seed == 1 else 1.5
            dirs.append(write_run(tmp_path, f"o_s{seed}_f{fold}", "ours", fold,
                                  _dual([v + shift for v in OURS[fold]]), seed=seed))
            dirs.append(write_run(tmp_path, f"w_s{seed}_f{fold}", "ours", fold,
                                  _dual(W0[fold]), name="ours_w0", weight=0.0, seed=seed))
    runs = collect_runs(dirs)
    prim = _result(gain_results(runs, "ours_w0"), "ours", "primary")
    assert (prim.n, prim.n_cases) == (16, 8)
    per_case = (np.array(OURS[0] + OURS[1]) + 0.75) - np.array(W0[0] + W0[1])
    assert prim.gain == pytest.approx(per_case.mean())
    assert prim.p_case == pytest.approx(
        wilcoxon(np.array(OURS[0] + OURS[1]) + 0.75, W0[0] + W0[1]).pvalue)
    assert prim.p_case > prim.p  # a case counted once: less evidence than 16 pairs
    assert prim.ci_case_high - prim.ci_case_low > prim.ci_high - prim.ci_low
    table = build_gain_table(runs, "ours_w0")
    col = table.headers.index("95% CI, cases resampled (pp)")
    assert table.headers[-1] == "p (per-case means)"
    assert table.rows[0][col] == f"[{prim.ci_case_low:+.2f}, {prim.ci_case_high:+.2f}]"
    assert table.records[0]["p_case"] == prim.p_case
    assert any("a case counts once" in n for n in table.notes)
    # without repeats the extra columns are absent and the two intervals agree
    single = gain_results(collect_runs(dirs[:4]), "ours_w0")
    assert all((r.ci_case_low, r.ci_case_high, r.p_case) == (r.ci_low, r.ci_high, r.p)
               or math.isnan(r.p) for r in single)
    assert "p (per-case means)" not in build_gain_table(collect_runs(dirs[:4]),
                                                        "ours_w0").headers


def test_equal_and_zero_differences(tmp_path):
    dirs = []
    for fold in (0, 1):
        dirs.append(write_run(tmp_path, f"base{fold}", "ours", fold, _dual(W0[fold]),
                              name="base"))
        dirs.append(write_run(tmp_path, f"plus{fold}", "ours", fold,
                              _dual([v + 2.5 for v in W0[fold]]), name="plus"))
        dirs.append(write_run(tmp_path, f"same{fold}", "ours", fold, _dual(W0[fold]),
                              name="same"))
    results = gain_results(collect_runs(dirs), "base")
    plus = _result(results, "plus", "primary")
    assert plus.gain == pytest.approx(2.5) and (plus.ci_low, plus.ci_high) == (2.5, 2.5)
    assert (plus.wins, plus.ties, plus.losses) == (8, 0, 0) and plus.p < 0.05
    same = _result(results, "same", "primary")
    assert same.gain == 0 and math.isnan(same.p) and "identical" in same.note
    assert (same.wins, same.ties, same.losses) == (0, 8, 0)
    table = build_gain_table(collect_runs(dirs), "base")
    assert any("same at" in n and "identical" in n for n in table.notes)


def test_pairing_never_crosses_folds(tmp_path):
    """Same test case names in both folds, different labelled lists (so different splits)."""
    test = LABELLED[:4]
    a0 = write_run(tmp_path, "a0", "ours", 0, _dual(OURS[0]), name="a", test=test)
    b1 = write_run(tmp_path, "b1", "ours", 1, _dual(W0[0]), name="b", test=test)
    runs = collect_runs([a0, b1])
    assert runs[0].split_key != runs[1].split_key
    keys, _, _ = paired_dice(runs[:1], runs[1:])
    assert keys == []
    only = gain_results(runs, "a")
    assert all(r.n == 0 and "no run shares" in r.note for r in only)
    # with both folds of both, fold k of b is paired with fold k of a only
    a1 = write_run(tmp_path, "a1", "ours", 1, _dual(OURS[1]), name="a", test=test)
    b0 = write_run(tmp_path, "b0", "ours", 0, _dual(W0[1]), name="b", test=test)
    prim = _result(gain_results(collect_runs([a0, a1, b0, b1]), "a"), "b", "primary")
    diff = np.array(W0[1] + W0[0]) - np.array(OURS[0] + OURS[1])
    assert prim.n == 8 and prim.n_cases == 4
    assert prim.gain == pytest.approx(diff.mean())
    assert prim.p == pytest.approx(wilcoxon(diff).pvalue)


def test_table1_accepts_folds_and_rejects_duplicates(cv_runs):
    runs = collect_runs(cv_runs)
    table = build_table1(runs)
    assert [r[0] for r in table.rows] == ["ict", "ours_w0", "ours"]
    rec = {r["name"]: r for r in table.records}
    assert rec["ours_w0"]["method"] == "ours"
    assert (rec["ours"]["n_runs"], rec["ours"]["n_seeds"], rec["ours"]["n_splits"]) == (2, 1, 2)
    per_fold = [np.mean(OURS[0]), np.mean(OURS[1])]
    assert rec["ours"]["dsc_mean"] == pytest.approx(np.mean(per_fold))
    assert rec["ours"]["dsc_seed_sd"] == pytest.approx(np.std(per_fold, ddof=1))
    assert rec["ours_w0"]["p_wilcoxon"] == pytest.approx(
        wilcoxon(OURS[0] + OURS[1], W0[0] + W0[1]).pvalue)
    assert rec["ours_w0"]["n_pairs"] == 8
    assert any("run SD" in h for h in table.headers)
    assert any("2 folds" in c for c in table.rows[0])
    assert any("Several runs (seeds and/or cross-validation folds)" in n for n in table.notes)
    with pytest.raises(ConfigError, match="pass only one"):
        build_table1(collect_runs(cv_runs + cv_runs[:1]))
    # another reference for the p column
    other = build_table1(runs, reference="ours_w0")
    assert other.rows[-1][0] == "ours_w0" and "p (vs ours_w0)" in other.headers[-1]


def test_table2_with_named_configurations(cv_runs, tmp_path):
    # ours without MCML: an (unnamed) ablation variant
    extra = [write_run(tmp_path, f"nomcml{f}", "ours", f, _dual(W0[f]), mcml=False)
             for f in (0, 1)]
    runs = collect_runs(cv_runs + extra)
    table = build_table2(runs)
    assert table is not None
    full = next(r for r in table.records if r["mcml"])
    assert full["names"] == "ours" and full["n_runs"] == 2  # ours wins over ours_w0
    assert len(build_table1(runs).rows) == 3  # the ablation variant stays out of Table 1


def test_cli_report_prints_gain_table(cv_runs, tmp_path, capsys):
    out = tmp_path / "report"
    main(["report", *map(str, cv_runs), "--out", str(out), "--baseline", "ours_w0"])
    stdout = capsys.readouterr().out
    assert "### Gain over ours_w0" in stdout and "primary (prediction vs ensemble)" in stdout
    assert f"report: {out / 'index.html'}" in stdout
    md = (out / "gain.md").read_text()
    assert md in stdout
    rows = list(csv.DictReader((out / "gain.csv").read_text().splitlines()))
    prim = next(r for r in rows if (r["name"], r["output"]) == ("ours", "primary"))
    assert float(prim["gain"]) == pytest.approx(np.mean(np.subtract(OURS[0] + OURS[1],
                                                                     W0[0] + W0[1])))
    page = (out / "index.html").read_text()
    assert 'id="gain"' in page and "Gain over ours_w0" in page
    line = cli_error_line(["report", *map(str, cv_runs), "--out", str(out), "--baseline",
                           "nope"], capsys)
    assert "'nope'" in line and "ours_w0" in line


def test_default_baseline_is_supervised(cv_runs, tmp_path):
    out = tmp_path / "r"
    make_report(cv_runs, out)
    assert not (out / "gain.md").exists()
    assert "No gain table" in (out / "index.html").read_text()
    sup = [write_run(tmp_path, f"sup{f}", "supervised", f, _dual(W0[f])) for f in (0, 1)]
    make_report(cv_runs + sup, out)
    assert "Gain over supervised" in (out / "gain.md").read_text()
    make_report(cv_runs, out)  # a stale gain table of an earlier report is removed
    assert not (out / "gain.md").exists() and not (out / "gain.csv").exists()


def test_run_level_gain_resamples_runs_not_cases(tmp_path):
    """One collapsed baseline run makes a case-level gain that the runs do not carry."""
    dirs = []
    gains = {0: 0.0, 1: -1.0, 2: 0.5, 3: 40.0}  # run 3: the baseline collapsed
    for seed, gain in gains.items():
        for fold in (0, 1):
            base = [60.0 + 5 * k + fold for k in range(4)]
            ours = [v + gain + (1.0 if k % 2 else -1.0) for k, v in enumerate(base)]
            dirs.append(write_run(tmp_path, f"o_s{seed}_f{fold}", "ours", fold, _dual(ours),
                                  seed=seed))
            dirs.append(write_run(tmp_path, f"w_s{seed}_f{fold}", "ours", fold, _dual(base),
                                  name="ours_w0", weight=0.0, seed=seed))
    prim = _result(gain_results(collect_runs(dirs), "ours_w0"), "ours", "primary")
    run_diffs = np.repeat(list(gains.values()), 2)  # 8 runs, each its seed's gain
    assert prim.n_runs == 8 and prim.gain_run == pytest.approx(run_diffs.mean())
    assert (prim.runs_won, prim.runs_lost) == (4, 2)
    lo, hi = bootstrap_mean_ci(run_diffs)
    assert (prim.ci_run_low, prim.ci_run_high) == (pytest.approx(lo), pytest.approx(hi))
    # the 32 pairs as independent cases: a narrower interval than the 8 runs give
    assert prim.ci_run_high - prim.ci_run_low > prim.ci_high - prim.ci_low
    table = build_gain_table(collect_runs(dirs), "ours_w0")
    assert table.headers[3:8] == ["runs", "Gain per run (pp)", "95% CI, runs resampled (pp)",
                                  "p (runs)", "runs W / L"]
    assert table.rows[0][3:8] == ["8", f"{prim.gain_run:+.2f}",
                                  f"[{lo:+.2f}, {hi:+.2f}]", f"{prim.p_run:.3g}", "4 / 2"]
    assert table.records[0]["runs_won"] == 4


def test_run_table_shows_each_run_and_the_collapsed_ones(tmp_path):
    from duetseg.reporting.run_table import build_run_table

    dirs = [write_run(tmp_path, f"o_f{f}", "ours", f, _dual(OURS[f])) for f in (0, 1)]
    dirs += [write_run(tmp_path, f"w_f{f}", "ours", f, _dual([v - 45 for v in W0[f]]),
                       name="ours_w0", weight=0.0) for f in (0, 1)]
    table = build_run_table(collect_runs(dirs))
    rows = {r[0]: r for r in table.rows}
    means = [np.mean(OURS[0]), np.mean(OURS[1])]
    assert rows["ours"][2:7] == ["2", f"{np.mean(means):.2f}", f"{np.std(means, ddof=1):.2f}",
                                 f"{min(means):.1f}", "0"]
    assert rows["ours_w0"][6] == "2"  # both control runs below 40 %
    assert rows["ours"][7] == f"s1f0 {means[0]:.1f} · s1f1 {means[1]:.1f}"
    assert len(table.records) == 4 and {r["fold"] for r in table.records} == {0, 1}
    make_report(dirs, tmp_path / "report", baseline="ours_w0")
    assert "Per-run Dice" in (tmp_path / "report" / "runs.md").read_text()


def test_branches_reading_other_inputs_are_not_compared(tmp_path):
    """A run whose branches read every input (``model.branch_input=all``) is compared with
    a modality-branch baseline by its primary output only: its branch_a is not a t1ce branch."""
    dirs = []
    for fold in (0, 1):
        dirs.append(write_run(tmp_path, f"w0_f{fold}", "ours", fold, _dual(W0[fold]),
                              name="ours_w0", weight=0.0))
        run = write_run(tmp_path, f"all_f{fold}", "ours", fold, _dual(OURS[fold]),
                        name="ours_all")
        summary_file = run / "eval" / "test" / "summary.json"
        summary = json.loads(summary_file.read_text())
        summary["output_specs"] = [
            {"name": "branch_a", "kind": "branch", "modality": None, "primary": False},
            {"name": "branch_b", "kind": "branch", "modality": None, "primary": False},
            {"name": "ensemble", "kind": "ensemble", "modality": None, "primary": True}]
        summary_file.write_text(json.dumps(summary))
        dirs.append(run)
    results = gain_results(collect_runs(dirs), "ours_w0")
    assert {(r.name, r.output) for r in results} == {("ours_all", "primary")}
