"""``predict --input``: a flat folder of nnU-Net channel files, an nnU-Net dataset with both
``imagesTr/`` and ``imagesTs/``, and BraTS 2023 names all give the masks of the same cases
given by a CSV manifest."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from _crash import overrides
from _nifti import head_image, write_nifti

from duetseg.cli import main
from duetseg.config import load_config
from duetseg.training import train
from duetseg.workflows.predict import predict_folder, trained_channels

CASES = ("new_a", "new_b")


@pytest.fixture(scope="module")
def run(tmp_path_factory, synthetic_cache):
    """A run trained (one iteration) on t1ce + t2."""
    root = tmp_path_factory.mktemp("predict_inputs")
    cache = synthetic_cache(root, n_cases=5)
    cfg = load_config("demo", [f"cache={cache.root}", *overrides(**{
        "train.max_iterations": 1, "train.val_every": 1, "train.checkpoint_every": 1})])
    train(cfg, root / "run", progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Per case and modality: the image array, and a CSV manifest of them."""
    root = tmp_path_factory.mktemp("new")
    rng = np.random.default_rng(11)
    arrays = {c: {m: head_image(rng, (30, 26, 22)) for m in ("t1ce", "t2")} for c in CASES}
    lines = ["case,t1ce,t2"]
    for case, mods in arrays.items():
        paths = [write_nifti(root / "csv" / f"{case}_{m}.nii.gz", a) for m, a in mods.items()]
        lines.append(f"{case},{paths[0]},{paths[1]}")
    (root / "cases.csv").write_text("\n".join(lines) + "\n")
    return arrays, root / "cases.csv"


@pytest.fixture(scope="module")
def reference(run, images, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    predict_folder(run, images[1], out, device="cpu", progress=False)
    return out


def _assert_same_masks(out: Path, ref: Path) -> None:
    for case in CASES:
        a, b = nib.load(out / f"{case}.nii.gz"), nib.load(ref / f"{case}.nii.gz")
        assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj)), case
    assert (out / "disagreement.csv").read_text() == (ref / "disagreement.csv").read_text()


def _channels(folder: Path, arrays: dict, order: tuple[str, ...]) -> Path:
    for case, mods in arrays.items():
        for ch, mod in enumerate(order):
            write_nifti(folder / f"{case}_{ch:04d}.nii.gz", mods[mod])
    return folder


def test_flat_channel_folder_uses_the_runs_modality_order(run, images, reference, tmp_path):
    flat = _channels(tmp_path / "flat", images[0], ("t1ce", "t2"))
    main(["predict", "--run", str(run), "--input", str(flat), "--out", str(tmp_path / "out"),
          "--device", "cpu", "--quiet"])
    _assert_same_masks(tmp_path / "out", reference)


def test_flat_channel_folder_with_dataset_json_names_the_channels(run, images, reference,
                                                                 tmp_path):
    flat = _channels(tmp_path / "flat", images[0], ("t2", "t1ce"))  # other order...
    (flat / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T2w", "1": "T1c"}}))
    predict_folder(run, flat, tmp_path / "out", device="cpu", progress=False)
    _assert_same_masks(tmp_path / "out", reference)  # ...named by dataset.json


def test_dataset_with_training_and_test_images_predicts_imagests(run, images, reference,
                                                                 tmp_path):
    ds = tmp_path / "Dataset001_X"
    _channels(ds / "imagesTs", images[0], ("t1ce", "t2"))
    rng = np.random.default_rng(0)
    for ch in (0, 1):
        write_nifti(ds / "imagesTr" / f"train_only_{ch:04d}.nii.gz", head_image(rng))
    (ds / "dataset.json").write_text(json.dumps({"channel_names": {"0": "t1ce", "1": "t2"}}))
    paths = predict_folder(run, ds, tmp_path / "out", device="cpu", progress=False)
    assert [p.name for p in paths] == [f"{c}.nii.gz" for c in CASES]
    _assert_same_masks(tmp_path / "out", reference)


def test_brats_2023_names_are_predicted_by_a_t1ce_t2_run(run, images, reference, tmp_path):
    for case, mods in images[0].items():
        write_nifti(tmp_path / "in" / case / f"{case}-t1c.nii.gz", mods["t1ce"])
        write_nifti(tmp_path / "in" / case / f"{case}-t2w.nii.gz", mods["t2"])
    predict_folder(run, tmp_path / "in", tmp_path / "out", device="cpu", progress=False)
    _assert_same_masks(tmp_path / "out", reference)


def _fake_run(sources: dict[str, str]) -> SimpleNamespace:
    """A run whose preprocessing description was taken from a cache of these source files."""
    from duetseg.config import PrepareConfig
    from duetseg.run.preprocessing import Preprocessing

    cache = SimpleNamespace(settings=PrepareConfig(modalities=["t1ce", "t2"]), cases=["c"],
                            modalities=["t1ce", "t2"], num_classes=2, fingerprint="f",
                            source="/d", properties=lambda case: {"source_files": sources})
    preprocessing = Preprocessing.from_cache(cache)
    # the description travels with the run and its exported model
    assert Preprocessing.from_dict(preprocessing.to_dict(), "here") == preprocessing
    return SimpleNamespace(preprocessing=preprocessing)


def test_trained_channels_follow_the_training_files_else_the_modality_order():
    nnunet = {"t1ce": "/d/imagesTr/c_0001.nii.gz", "t2": "/d/imagesTr/c_0000.nii.gz"}
    assert trained_channels(_fake_run(nnunet)) == {"t1ce": 1, "t2": 0}
    brats = {"t1ce": "/d/c/c_t1ce.nii.gz", "t2": "/d/c/c_t2.nii.gz"}
    assert trained_channels(_fake_run(brats)) == {"t1ce": 0, "t2": 1}
