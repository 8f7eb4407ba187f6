"""Building and reading the preprocessed cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _nifti import LPS, RAS, make_brats

import duetseg.data.prepare as prepare_mod
from duetseg.config import NormalizationConfig, PrepareConfig
from duetseg.data.cache import Cache, fingerprint
from duetseg.data.prepare import prepare_dataset
from duetseg.errors import ConfigError, InputError

CFG = PrepareConfig(modalities=["t1ce", "t2"], label_mapping="whole_tumour", crop_margin=1)


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(11)
    root = tmp_path / "ds"
    make_brats(root, "c1", rng, affine=RAS)
    make_brats(root, "c2", rng, affine=LPS)
    make_brats(root, "c3", rng, affine=RAS, labelled=False)
    return root


@pytest.fixture
def counted(monkeypatch):
    """Count preprocess_case calls (in-process runs only)."""
    calls = []
    real = prepare_mod.preprocess_case

    def spy(spec, cfg):
        calls.append(spec.case)
        return real(spec, cfg)

    monkeypatch.setattr(prepare_mod, "preprocess_case", spy)
    return calls


def test_fingerprint():
    assert fingerprint(CFG) == fingerprint(PrepareConfig(**CFG.model_dump()))
    assert fingerprint(CFG) == fingerprint(CFG.model_copy(update={"layout": "brats"}))
    other = CFG.model_copy(update={"default_normalization":
                                   NormalizationConfig(scheme="minmax")})
    assert fingerprint(other) != fingerprint(CFG)
    assert len(fingerprint(CFG)) == 64


def test_prepare_parallel_and_read(dataset, tmp_path):
    out = tmp_path / "cache"
    cache = prepare_dataset(dataset, out, CFG, num_workers=2, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert set(meta) == {"format_version", "fingerprint", "settings", "modalities",
                         "num_classes", "cases", "source"}
    assert meta["cases"] == [{"case": "c1", "labelled": True}, {"case": "c2", "labelled": True},
                             {"case": "c3", "labelled": False}]
    assert meta["source"] == str(dataset.resolve()) and meta["fingerprint"] == fingerprint(CFG)
    cache = Cache(out)
    assert cache.cases == ["c1", "c2", "c3"] and cache.labelled_cases == ["c1", "c2"]
    assert cache.modalities == ["t1ce", "t2"] and cache.num_classes == 2
    assert cache.settings == CFG and cache.fingerprint == meta["fingerprint"]
    img, lab = cache.load_image("c2"), cache.load_label("c2")
    assert isinstance(img, np.memmap) and img.dtype == np.float32 and img.ndim == 4
    assert lab.dtype == np.uint8 and lab.shape == img.shape[1:] and set(np.unique(lab)) <= {0, 1}
    assert cache.properties("c2")["original_axcodes"] == ["L", "P", "S"]
    assert not (out / "c3_seg.npy").exists()
    with pytest.raises(KeyError, match="unlabelled"):
        cache.label_path("c3")
    with pytest.raises(KeyError):
        cache.image_path("nope")
    assert not list(out.glob(".tmp-*"))


def test_second_run_skips_and_interrupted_run_finishes(dataset, tmp_path, counted):
    out = tmp_path / "cache"
    prepare_dataset(dataset, out, CFG, num_workers=1, progress=False)
    assert counted == ["c1", "c2", "c3"]
    before = (out / "c1.npy").stat().st_mtime_ns
    prepare_dataset(dataset, out, CFG, num_workers=1, progress=False)
    assert counted == ["c1", "c2", "c3"]  # nothing redone
    assert (out / "c1.npy").stat().st_mtime_ns == before
    # an interrupted run: c2 wrote its arrays but not its json, and no dataset.json yet
    (out / "c2.json").unlink()
    (out / "dataset.json").unlink()
    (out / ".tmp-c2.npy-abc.npy").write_bytes(b"partial")
    cache = prepare_dataset(dataset, out, CFG, num_workers=1, progress=False)
    assert counted == ["c1", "c2", "c3", "c2"]
    assert cache.cases == ["c1", "c2", "c3"]
    assert not list(out.glob(".tmp-*"))


def test_changed_settings_rebuild(dataset, tmp_path, counted, capsys):
    out = tmp_path / "cache"
    prepare_dataset(dataset, out, CFG, num_workers=1, progress=False)
    shape = np.load(out / "c1.npy").shape
    other = CFG.model_copy(update={"target_spacing": (2.0, 2.4, 4.0)})
    cache = prepare_dataset(dataset, out, other, num_workers=1, progress=False)
    assert "rebuilding" in capsys.readouterr().err
    assert counted == ["c1", "c2", "c3"] * 2
    assert cache.fingerprint == fingerprint(other) != fingerprint(CFG)
    assert cache.settings.target_spacing == (2.0, 2.4, 4.0)
    assert np.load(out / "c1.npy").shape[1] < shape[1]
    assert all(cache.properties(c)["fingerprint"] == fingerprint(other) for c in cache.cases)


def test_errors_propagate_with_case_name(dataset, tmp_path):
    (dataset / "c2" / "c2_t2.nii.gz").write_bytes(b"not a nifti at all")
    with pytest.raises(InputError, match="c2.*c2_t2.nii.gz.*cannot read"):
        prepare_dataset(dataset, tmp_path / "cache", CFG, num_workers=2, progress=False)
    assert not (tmp_path / "cache" / "dataset.json").exists()


def test_cache_without_dataset_json(tmp_path):
    with pytest.raises(ConfigError, match="not a prepared cache"):
        Cache(tmp_path)
