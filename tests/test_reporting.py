"""Reporting: run collection, Table 1 / Table 2, Wilcoxon tests, figures and the HTML page."""

from __future__ import annotations

import csv
import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from _nifti import write_nifti
from scipy.stats import wilcoxon

from duetseg.config import Config
from duetseg.errors import ConfigError
from duetseg.evaluation.summary import summarize, write_metrics_csv
from duetseg.reporting.collect import collect_runs
from duetseg.reporting.report import make_report
from duetseg.reporting.stats import wilcoxon_vs_reference
from duetseg.reporting.tables import build_table1, build_table2

TRAIN = [f"tr{i:02d}" for i in range(20)]
TEST = [f"te{i}" for i in range(6)]
SHAPE = (12, 12, 6)
BRANCHES = {"branch_a": "branch reading t1ce", "branch_b": "branch reading t2",
            "ensemble": "mean of the branches' softmax"}


def _box(z_hi: int, shift: int = 0) -> np.ndarray:
    lab = np.zeros(SHAPE, dtype=np.uint8)
    lab[3 + shift:8 + shift, 3:8, 2:z_hi] = 1
    lab[4:6, 4:6, 1] = 1
    return lab


def _make_cache(root: Path) -> Path:
    cache = root / "cache"
    rng = np.random.default_rng(0)
    for case in TEST:
        img = write_nifti(root / "raw" / f"{case}_t1ce.nii.gz",
                          rng.random(SHAPE).astype(np.float32) + 1.0)
        img2 = write_nifti(root / "raw" / f"{case}_t2.nii.gz", rng.random(SHAPE).astype("f4"))
        seg = write_nifti(root / "raw" / f"{case}_seg.nii.gz", _box(4))
        cache.mkdir(exist_ok=True)
        (cache / f"{case}.json").write_text(json.dumps(
            {"case": case, "source_files": {"t1ce": str(img), "t2": str(img2)},
             "label_file": str(seg)}))
    return cache


def make_run(root: Path, name: str, cache: Path, method: str, labeled: str, n_labeled: int,
             seed: int, fusion: str = "gate_residual", mae: bool = True, mcml: bool = True,
             predictions: bool = True) -> tuple[Path, dict[str, dict[str, dict[str, float]]]]:
    """Write one fake evaluated run; return its dir and output -> metric -> case -> value."""
    run = root / name
    cfg = Config.model_validate({
        "cache": str(cache), "splits": {"labeled": labeled},
        "model": {"fusion": fusion, "mae": mae},
        "method": {"name": method, "mcml": mcml}, "train": {"seed": seed}})
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(cfg.to_yaml())
    (run / "splits.json").write_text(json.dumps({
        "train": TRAIN, "val": ["va0"], "test": TEST, "labeled": TRAIN[:n_labeled],
        "unlabeled": TRAIN[n_labeled:]}))
    dual = method in ("ours", "supervised")
    outputs = BRANCHES if dual else {"prediction": "one network"}
    primary = "ensemble" if dual else "prediction"
    (run / "log.csv").write_text(
        f"iteration,loss,sup,unsup,lr,val_dice/{primary}\n"
        "10,1.0,0.8,0.2,0.01,\n20,0.7,0.6,0.1,0.009,55.5\n30,0.5,0.4,0.1,0.008,\n"
        "40,0.4,0.3,0.1,0.007,70.25\n")
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    truth: dict[str, dict[str, dict[str, float]]] = {}
    rows = []
    for out in outputs:
        truth[out] = {"dice": {}, "asd": {}}
        for k, case in enumerate(TEST):
            dice = float(rng.uniform(50, 95))
            asd = math.nan if (k == 5 and out == primary) else float(rng.uniform(0.5, 5))
            truth[out]["dice"][case], truth[out]["asd"][case] = dice, asd
            rows.append({"case": case, "output": out, "class": 1, "dice": dice, "asd": asd,
                         "assd": asd, "hd95": asd})
    write_metrics_csv(rows, run / "eval" / "test" / "metrics.csv")
    (run / "eval" / "test" / "summary.json").write_text(json.dumps({
        "method": method, "primary_output": primary, "outputs": outputs,
        "metrics": summarize(rows)}))
    if predictions:
        for case in TEST[:3]:
            write_nifti(run / "eval" / "test" / "predictions" / f"{case}.nii.gz",
                        _box(4, shift=seed % 2))
    return run, truth


def make_fake_runs(root: Path) -> dict:
    """ours / mean_teacher at 5% (1) and 10% (2) labelled, seeds 1 and 2, plus ablations."""
    cache = _make_cache(root)
    dirs, truth = [], {}
    for method in ("ours", "mean_teacher"):
        for spec, n in (("5%", 1), ("10%", 2)):
            for seed in (1, 2):
                run, t = make_run(root, f"{method}_{n}_{seed}", cache, method, spec, n, seed)
                dirs.append(run)
                truth[(method, n, seed)] = t
    ablations = {  # (fusion, mae, mcml, method) -> name
        ("none", False, False, "supervised"): "abl_base",
        ("gate_residual", False, False, "ours"): "abl_mmf",
        ("gate_residual", True, False, "ours"): "abl_mmf_mae",
        ("gate_residual", False, True, "ours"): "abl_mmf_mcml",
    }
    for (fusion, mae, mcml, method), name in ablations.items():
        run, t = make_run(root, name, cache, method, "5%", 1, 1, fusion, mae, mcml,
                          predictions=False)
        dirs.append(run)
        truth[name] = t
    return {"dirs": dirs, "truth": truth, "cache": cache}


@pytest.fixture()
def fake(tmp_path):
    return make_fake_runs(tmp_path)


def _finite(values):
    arr = np.asarray(list(values), float)
    return arr[np.isfinite(arr)]


def test_collect_fields(fake):
    runs = collect_runs(fake["dirs"])
    first = runs[0]
    assert (first.method, first.labeled, first.labeled_spec, first.seed) == ("ours", 1, "5%", 1)
    assert first.labeled_percent == pytest.approx(5.0)
    assert (first.mmf, first.mae, first.mcml) == (True, True, True)
    assert first.primary_output == "ensemble" and first.is_dual_branch
    assert len(first.rows) == 3 * len(TEST) and math.isnan(first.rows[5 + 12]["asd"])
    base = next(r for r in runs if r.run_dir.name == "abl_base")
    assert (base.mmf, base.mae, base.mcml) == (False, False, False)
    mt = next(r for r in runs if r.method == "mean_teacher")
    assert mt.mcml is False and not mt.is_dual_branch
    with pytest.raises(ConfigError, match="evaluate"):
        collect_runs([fake["dirs"][0]], split="val")


def test_table1_numbers_and_seed_spread(fake):
    runs = collect_runs(fake["dirs"])
    table = build_table1(runs)
    assert [r[0] for r in table.rows] == ["mean_teacher", "ours"]  # baselines first
    rec = {(r["method"], r["labeled"]): r for r in table.records}
    assert set(rec) == {(m, n) for m in ("ours", "mean_teacher") for n in (1, 2)}
    for (method, n), r in rec.items():
        per_seed = [fake["truth"][(method, n, s)] for s in (1, 2)]
        primary = "ensemble" if method == "ours" else "prediction"
        for metric, key in (("dice", "dsc"), ("asd", "asd")):
            vals = [_finite(t[primary][metric].values()) for t in per_seed]
            means = [v.mean() for v in vals]
            assert r[f"{key}_mean"] == pytest.approx(np.mean(means))
            assert r[f"{key}_std"] == pytest.approx(np.mean([v.std() for v in vals]))
            assert r[f"{key}_seed_sd"] == pytest.approx(abs(means[0] - means[1]) / math.sqrt(2))
        assert r["n_seeds"] == 2 and r["asd_nan_count"] == 2
    md = table.to_markdown()
    mt = rec[("mean_teacher", 1)]
    assert f"{mt['dsc_mean']:.2f} ± {mt['dsc_std']:.2f}" in md
    assert "5% DSC (%)" in table.headers and "10% ASD (mm)" in table.headers
    assert any("seed SD" in h for h in table.headers)
    csv_rows = list(csv.DictReader(table.to_csv().splitlines()))
    assert float(csv_rows[0]["dsc_mean"]) == pytest.approx(table.records[0]["dsc_mean"])


def test_single_seed_is_mean_std_over_cases(fake):
    runs = [r for r in collect_runs(fake["dirs"]) if r.seed == 1 and r.labeled == 2]
    table = build_table1(runs)
    ours = next(r for r in table.records if r["method"] == "ours")
    dice = _finite(fake["truth"][("ours", 2, 1)]["ensemble"]["dice"].values())
    assert ours["dsc_mean"] == pytest.approx(dice.mean())
    assert ours["dsc_std"] == pytest.approx(dice.std())
    assert not any("seed SD" in h for h in table.headers)


def test_wilcoxon_matches_scipy(fake):
    runs = collect_runs(fake["dirs"])
    table = build_table1(runs)
    rec = next(r for r in table.records if (r["method"], r["labeled"]) == ("mean_teacher", 1))
    a, b = [], []
    for seed in (1, 2):
        ours = fake["truth"][("ours", 1, seed)]["ensemble"]["dice"]
        mt = fake["truth"][("mean_teacher", 1, seed)]["prediction"]["dice"]
        a += [ours[c] for c in TEST]
        b += [mt[c] for c in TEST]
    assert rec["n_pairs"] == 12
    assert rec["p_wilcoxon"] == pytest.approx(wilcoxon(a, b).pvalue)
    assert f"{rec['p_wilcoxon']:.3g}" in table.rows[0]
    ours_rec = next(r for r in table.records if r["method"] == "ours")
    assert ours_rec["p_wilcoxon"] is None


def test_wilcoxon_degenerate_cases(fake):
    runs = collect_runs(fake["dirs"])
    ours = [r for r in runs if r.run_dir.name == "ours_1_1"]
    same = wilcoxon_vs_reference(ours, ours, "ours_copy", 1)
    assert math.isnan(same.p) and same.n == len(TEST) and "identical" in same.note
    mt = [r for r in runs if r.run_dir.name == "mean_teacher_1_1"]
    mt[0].rows = [row for row in mt[0].rows if row["case"] == TEST[0]]
    few = wilcoxon_vs_reference(ours, mt, "mean_teacher", 1)
    assert math.isnan(few.p) and few.n == 1 and "too few" in few.note
    none = wilcoxon_vs_reference([], mt, "mean_teacher", 1)
    assert math.isnan(none.p) and none.n == 0


def test_table2_flags_and_branches(fake):
    runs = collect_runs(fake["dirs"])
    table = build_table2(runs)
    assert table is not None
    assert "DSC (%) t1ce" in table.headers and "ASD (mm) t2" in table.headers
    five = [r for r in table.rows if r[0] == "5%"]
    assert [tuple(r[1:5]) for r in five] == [
        ("✓", "✗", "✗", "✗"), ("✓", "✓", "✗", "✗"), ("✓", "✓", "✓", "✗"),
        ("✓", "✓", "✗", "✓"), ("✓", "✓", "✓", "✓")]
    base = next(r for r in table.records if not (r["mmf"] or r["mae"] or r["mcml"]))
    dice_a = _finite(fake["truth"]["abl_base"]["branch_a"]["dice"].values())
    assert base["dsc_mean_branch_a"] == pytest.approx(dice_a.mean())
    assert base["methods"] == "supervised" and base["modality_branch_b"] == "t2"
    full5 = next(r for r in table.records if r["labeled"] == 1 and r["mmf"] and r["mae"]
                 and r["mcml"])
    assert full5["n_seeds"] == 2
    # ablation variants stay out of Table 1
    assert build_table2([r for r in runs if r.mmf and r.mae and r.mcml]) is None
    assert len(build_table1(runs).records) == 4


def test_duplicate_runs_rejected(fake):
    runs = collect_runs(fake["dirs"][:1] * 2)
    with pytest.raises(ConfigError, match="pass only one"):
        build_table1(runs)


def test_make_report_files_and_html(fake, tmp_path):
    out = tmp_path / "report"
    index = make_report(fake["dirs"], out)
    assert index == out / "index.html"
    for name in ("table1.md", "table1.csv", "table2.md", "table2.csv", "curves.png",
                 "qualitative.png"):
        assert (out / name).stat().st_size > 100, name
    assert (out / "qualitative.png").read_bytes()[:4] == b"\x89PNG"
    page = index.read_text()
    assert 'id="table1"' in page and 'id="table2"' in page and 'id="stats"' in page
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="[^"]+">', page)
    assert len(imgs) == 2 and all(len(i) > 1000 for i in imgs)
    assert "http://" not in page and "https://" not in page
    assert "<td>mean_teacher</td>" in page
    assert not list(out.glob(".tmp-*"))


def test_report_without_predictions_or_ablation(fake, tmp_path):
    dirs = [d for d in fake["dirs"] if d.name.startswith("mean_teacher_1")]
    for d in dirs:
        for p in (d / "eval" / "test" / "predictions").glob("*"):
            p.unlink()
        (d / "log.csv").unlink()
    index = make_report(dirs, tmp_path / "r2")
    assert not (tmp_path / "r2" / "qualitative.png").exists()
    assert not (tmp_path / "r2" / "table2.md").exists()
    page = index.read_text()
    assert "No qualitative figure" in page and "No ablation runs" in page
    assert (tmp_path / "r2" / "curves.png").exists()
