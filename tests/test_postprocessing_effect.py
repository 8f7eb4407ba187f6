"""The results-page question on the largest-component filter, on tiny saved predictions."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from duetseg.analysis.postprocessing import (
    ComponentEffect,
    component_effect,
    component_effect_table,
    target_name,
)
from duetseg.config import load_config
from duetseg.evaluation.metrics import dice


@pytest.fixture(scope="module")
def cache(tmp_path_factory, synthetic_cache):
    return synthetic_cache(tmp_path_factory.mktemp("lcc"), n_cases=3, shape=(32, 32, 24))


def _run(tmp_path, cache, blob_sizes):
    """A run folder whose test predictions are each reference plus a remote cube."""
    run = tmp_path / "run"
    cfg = load_config("demo", [f"cache={json.dumps(str(cache.root))}", "name=cfg_a",
                               "splits.labeled=2"])
    (run / "eval" / "test" / "predictions").mkdir(parents=True)
    (run / "config.yaml").write_text(cfg.to_yaml())
    for case, size in zip(cache.cases, blob_sizes, strict=False):
        img = nib.load(cache.properties(case)["label_file"])
        pred = (np.asanyarray(img.dataobj) > 0).astype(np.uint8)
        assert not pred[:size, :size, :size].any()  # the cube is apart from the tumour
        pred[:size, :size, :size] = 1
        nib.save(nib.Nifti1Image(pred, img.affine), run / "eval" / "test" / "predictions"
                 / f"{case}.nii.gz")
    return run


def test_a_small_remote_blob_is_removed_and_a_large_one_kept(tmp_path, cache):
    tumour = [int((np.asanyarray(nib.load(cache.properties(c)["label_file"]).dataobj) > 0)
                  .sum()) for c in cache.cases[:2]]
    big = int(np.ceil(tumour[1] ** (1 / 3))) + 1  # larger than the second case's tumour
    effect = component_effect(_run(tmp_path, cache, [2, big]))
    assert effect.name == "cfg_a" and effect.target == "whole_tumour" and effect.labeled == "2"
    assert effect.cases == tuple(cache.cases[:2])
    assert effect.before[0] < 100.0 and effect.after[0] == 100.0  # the blob went
    assert effect.after[1] < effect.before[1]  # the blob stayed, the tumour went
    ref = np.asanyarray(nib.load(cache.properties(cache.cases[1])["label_file"]).dataobj) > 0
    assert effect.after[1] == dice(np.zeros_like(ref), ref) == 0.0
    assert effect.change == pytest.approx(np.mean(effect.after) - np.mean(effect.before))


def test_a_run_without_saved_predictions_gives_none(tmp_path):
    (tmp_path / "eval" / "test").mkdir(parents=True)
    assert component_effect(tmp_path) is None


def test_the_table_has_a_row_per_configuration_and_one_per_target():
    def effect(name, before, after):
        return ComponentEffect(name, "whole_tumour", "2", ("a", "b"), before, after)

    effects = [effect("x", (50.0, 60.0), (55.0, 65.0)), effect("x", (70.0, 70.0), (70.0, 60.0)),
               effect("x", (40.0, 40.0), (42.0, 40.0)), effect("y", (10.0, 10.0), (10.0, 10.0))]
    rows = component_effect_table(effects, n_resamples=50).splitlines()[2:]
    assert rows[0].startswith("| whole tumour | x | 2 | 3 | 55.0 | 55.3 | +0.3 [")
    assert rows[0].endswith("| 2 / 1 |")
    assert rows[1] == "| whole tumour | y | 2 | 1 | 10.0 | 10.0 | +0.0 | 0 / 0 |"
    assert rows[2].startswith("| whole tumour | all whole tumour runs | all | 4 | 43.8 | 44.0 |")


def test_a_value_mapping_is_named_by_the_brats_region_it_spells_out():
    assert target_name("whole_tumour") == "whole_tumour"
    assert target_name({"1": 1, "2": 0, "4": 1}) == "tumour_core"  # as JSON stores it
    assert target_name({1: 0, 2: 0, 3: 1, 4: 1}) == "enhancing_tumour"
    assert target_name({1: 1, 2: 1, 4: 2}) == "custom"
