"""Training on a selection of a cache's modalities (``Config.modalities``, ``train
--modalities``): the cache view, the batches, and a run that predicts from the selected
modalities' files alone."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import yaml

from duetseg import Segmenter
from duetseg.cli import main
from duetseg.config import PrepareConfig
from duetseg.data.cache import FORMAT_VERSION, Cache, fingerprint, open_cache, take_channels
from duetseg.data.sampling import TwoStreamBatches
from duetseg.errors import ConfigError
from duetseg.export import export_model
from duetseg.workflows.evaluate import evaluate_run
from duetseg.workflows.predict import predict_folder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory, synthetic_cache):
    return synthetic_cache(tmp_path_factory.mktemp("selection"), n_cases=6,
                           shape=(32, 32, 24), seed=3)


def test_a_selection_reads_its_channels_in_its_order(cache):
    case = cache.cases[0]
    full = np.asarray(cache.load_image(case))
    t2 = cache.select(["t2"])
    assert t2.modalities == ["t2"] and t2.channels == [1] and cache.channels is None
    assert isinstance(t2.load_image(case), np.memmap)  # one channel stays memory-mapped
    assert np.array_equal(t2.load_image(case), full[1:2])
    swapped = open_cache(cache.root, ["t2", "t1ce"])
    assert np.array_equal(swapped.load_image(case, mmap=False), full[::-1])
    assert swapped.cases == cache.cases and swapped.labelled_cases == cache.labelled_cases


def test_a_selection_has_the_settings_of_a_cache_of_those_modalities(cache):
    t2 = cache.select(["t2"])
    alone = cache.settings.model_copy(update={"modalities": ["t2"]})
    assert t2.settings.modalities == ["t2"] and t2.fingerprint == fingerprint(alone)
    assert t2.fingerprint != cache.fingerprint
    assert cache.settings.modalities == ["t1ce", "t2"]  # the cache itself is unchanged


@pytest.mark.parametrize("names", [[], ["flair"], ["t2", "t2"]])
def test_a_bad_selection_names_the_cache_and_its_modalities(cache, names):
    with pytest.raises(ConfigError, match=r"not a selection of the cache .*\['t1ce', 't2'\]"):
        cache.select(names)


def test_a_registered_cache_keeps_its_reference(tmp_path):
    settings = PrepareConfig(modalities=["ct", "mr"], registration={"enabled": True})
    meta = {"format_version": FORMAT_VERSION, "settings": settings.model_dump(mode="json"),
            "modalities": ["ct", "mr"], "num_classes": 2, "cases": [], "source": "s",
            "fingerprint": fingerprint(settings)}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="leave out 'ct', the registration reference"):
        Cache(tmp_path).select(["mr"])
    assert Cache(tmp_path).select(["ct"]).settings.registration.reference == "ct"


def test_take_channels():
    image = np.arange(4 * 2 * 2 * 2, dtype=np.float32).reshape(4, 2, 2, 2)
    view = take_channels(image, [1, 2])
    assert np.shares_memory(view, image) and np.array_equal(view, image[1:3])
    assert np.array_equal(take_channels(image, [3, 0]), image[[3, 0]])


def test_batches_of_a_selection_are_the_selected_channels_of_the_same_crops(cache):
    # the crops, flips and rotations are drawn alike; intensity augmentation draws per
    # channel, so a selection gets the draws of a cache holding only its modalities
    args = (cache.root, cache.labelled_cases[:2], cache.labelled_cases[2:], (16, 16, 16), 4,
            2, 7)
    full = TwoStreamBatches(*args, spatial_augment=0.5)[3]
    swapped = TwoStreamBatches(*args, spatial_augment=0.5, channels=[1, 0])[3]
    t2 = TwoStreamBatches(*args, spatial_augment=0.5, channels=[1])[3]
    assert t2["image"].shape[1] == 1 and torch_equal(t2["image"][:, 0], full["image"][:, 1])
    assert torch_equal(t2["label"], full["label"]) and t2["image"].abs().sum() > 0
    assert torch_equal(swapped["image"], full["image"].flip(1))


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_a_run_on_t2_of_a_two_modality_cache_predicts_from_t2_alone(cache, tmp_path):
    run = tmp_path / "run"
    sets = {"splits.labeled": 2, "splits.val": 1, "splits.test": 1, "model.base_width": 2,
            "model.dropout": 0.0, "model.branches": 2, "model.branch_input": "all",
            "train.crop_size": [16, 16, 16], "train.batch_size": 4, "train.labeled_bs": 2,
            "train.num_workers": 0, "train.max_iterations": 2, "train.val_every": 2,
            "train.checkpoint_every": 2, "inference.sw_batch_size": 8}
    argv = ["train", "--cache", str(cache.root), "--modalities", "t2", "--config", "demo",
            "--method", "ours", "--out", str(run), "--quiet"]
    for key, value in sets.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    main(argv)
    assert yaml.safe_load((run / "config.yaml").read_text())["modalities"] == ["t2"]
    assert json.loads((run / "preprocessing.json").read_text())["modalities"] == ["t2"]
    summary = evaluate_run(run, "test", progress=False)
    assert np.isfinite(summary["metrics"]["ensemble"]["1"]["dice"]["mean"])
    case = json.loads((run / "splits.json").read_text())["test"][0]
    seg = Segmenter.load(export_model(run, tmp_path / "model.zip"), device="cpu")
    t2 = cache.root.parent / "raw" / case / f"{case}_t2.nii.gz"
    out = seg.predict({"t2": str(t2)}, case=case)
    assert seg.modalities == ["t2"] and out.modalities_used == ["t2"]
    only_t2 = tmp_path / "new" / case
    only_t2.mkdir(parents=True)
    shutil.copy(t2, only_t2 / t2.name)  # a folder without the T1ce file
    predict_folder(run, only_t2.parent, tmp_path / "pred", progress=False)
    mask = np.asanyarray(nib.load(tmp_path / "pred" / f"{case}.nii.gz").dataobj)
    assert mask.shape == out.mask.shape and np.array_equal(mask, out.mask)
