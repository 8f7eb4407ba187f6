"""`duetseg demo` wiring, with a very short training (the real demo trains longer)."""

import json

from duetseg.workflows.demo import run_demo


def test_demo_runs_end_to_end(tmp_path):
    summary = run_demo(tmp_path / "demo", n_cases=12, progress=False,
                       overrides=["train.max_iterations=4", "train.val_every=4",
                                  "train.checkpoint_every=4", "model.base_width=4",
                                  "train.num_workers=0"])
    out = tmp_path / "demo"
    assert (out / "overlay.png").stat().st_size > 1000
    saved = json.loads((out / "run" / "eval" / "test" / "summary.json").read_text())
    assert saved["n_cases"] == 6
    assert set(saved["metrics"]) == {"branch_a", "branch_b", "ensemble"}
    assert summary["primary_output"] == "ensemble"
    assert len(list((out / "run" / "eval" / "test" / "predictions").glob("*.nii.gz"))) == 6
