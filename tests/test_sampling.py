"""Tests of crops, augmentation and two-stream batch sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duetseg.data.augment import random_crop, random_flip_rot
from duetseg.data.loader import make_loader
from duetseg.data.sampling import TwoStreamBatches
from duetseg.errors import ConfigError, InputError

CROP = (16, 16, 12)


def _write_case(root, name, shape, rng, labelled=True):
    """Two channels; label == (channel 0 > 0.5); channel 1 == 2 * channel 0 + 1."""
    ch0 = rng.random(shape).astype(np.float32)
    img = np.stack([ch0, 2 * ch0 + 1]).astype(np.float32)
    np.save(root / f"{name}.npy", img)
    if labelled:
        np.save(root / f"{name}_seg.npy", (ch0 > 0.5).astype(np.uint8))


@pytest.fixture
def cache(tmp_path):
    rng = np.random.default_rng(0)
    shapes = [(24, 20, 16), (20, 24, 14), (12, 10, 8), (30, 18, 20), (16, 16, 12)]
    for i, shape in enumerate(shapes):
        _write_case(tmp_path, f"lab{i}", shape, rng)
    for i in range(3):
        _write_case(tmp_path, f"unl{i}", (22, 18, 15), rng, labelled=False)
    return tmp_path


def _ds(cache, **kw):
    args = dict(labeled=[f"lab{i}" for i in range(5)], unlabeled=[f"unl{i}" for i in range(3)],
                crop_size=CROP, batch_size=4, labeled_bs=2, seed=5)
    args.update(kw)
    return TwoStreamBatches(cache, **args)


def _consistent(image, label):
    """Crop, flips and rotations were applied identically to channels and label."""
    ch0, ch1 = image[:, 0], image[:, 1]
    padded = ch1 == 0
    assert torch.equal(ch0[padded], torch.zeros_like(ch0[padded]))
    assert torch.allclose(ch1[~padded], 2 * ch0[~padded] + 1)
    if label is not None:
        assert torch.equal(label, (ch0 > 0.5).long())


def test_batch_shapes_and_dtypes(cache):
    b = _ds(cache)[0]
    assert b["image"].shape == (4, 2, *CROP) and b["image"].dtype == torch.float32
    assert b["label"].shape == (2, *CROP) and b["label"].dtype == torch.int64
    assert len(b["cases"]) == 4
    assert all(c.startswith("lab") for c in b["cases"][:2])
    assert all(c.startswith("unl") for c in b["cases"][2:])
    _consistent(b["image"][:2], b["label"])
    _consistent(b["image"][2:], None)


def test_pure_function_of_seed_and_iteration(cache):
    a, b = _ds(cache), _ds(cache)
    for it in (0, 3, 17):
        x, y = a[it], b[it]
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
        assert x["cases"] == y["cases"]
    assert not torch.equal(a[1]["image"], a[2]["image"])
    assert not torch.equal(a[1]["image"], _ds(cache, seed=6)[1]["image"])
    _ = a[40]  # order of access does not matter
    assert torch.equal(a[3]["image"], b[3]["image"])


def test_labelled_walk_covers_each_permutation(cache):
    ds = _ds(cache, labeled_bs=1, batch_size=2)
    seen = [ds.cases_for(it)[0] for it in range(15)]
    for p in range(3):
        assert sorted(seen[5 * p:5 * p + 5]) == [f"lab{i}" for i in range(5)]
    assert seen[:5] != seen[5:10] or seen[5:10] != seen[10:15]
    unl = [ds.cases_for(it)[1] for it in range(6)]
    assert sorted(unl[:3]) == sorted(unl[3:]) == ["unl0", "unl1", "unl2"]


def test_transforms_identical_across_modalities_and_label(cache):
    ds = _ds(cache, foreground_prob=0.5)
    for it in range(25):
        b = ds[it]
        _consistent(b["image"][:2], b["label"])
        _consistent(b["image"][2:], None)


def test_padding_when_volume_smaller_than_crop(tmp_path):
    rng = np.random.default_rng(1)
    _write_case(tmp_path, "small", (10, 12, 6), rng)
    b = TwoStreamBatches(tmp_path, ["small"], [], CROP, 2, 1, seed=0)[0]
    assert b["image"].shape == (2, 2, *CROP)
    assert b["cases"] == ["small", "small"]  # no unlabelled cases: drawn from labelled
    _consistent(b["image"][:1], b["label"])
    for img in b["image"]:
        assert (img[1] == 0).sum() == np.prod(CROP) - 10 * 12 * 6  # padded voxels are zero


def test_random_crop_padding_symmetric_and_memmap(tmp_path):
    img = np.arange(2 * 6 * 20 * 4, dtype=np.float32).reshape(2, 6, 20, 4) + 1
    np.save(tmp_path / "v.npy", img)
    mm = np.load(tmp_path / "v.npy", mmap_mode="r")
    lab = np.ones((6, 20, 4), dtype=np.uint8)
    crop, lcrop = random_crop(mm, lab, (10, 8, 8), np.random.default_rng(0))
    assert crop.shape == (2, 10, 8, 8) and isinstance(crop, np.ndarray)
    assert (crop[:, :2] == 0).all() and (crop[:, 8:] == 0).all()
    assert (crop[:, 2:8, :, 2:6] > 0).all()
    assert (crop[:, :, :, :2] == 0).all() and (crop[:, :, :, 6:] == 0).all()
    assert lcrop.sum() == 6 * 8 * 4
    # The y window is a contiguous slab of the original.
    y0 = int(crop[0, 2, 0, 2] - 1) // 4 % 20
    np.testing.assert_array_equal(crop[:, 2:8, :, 2:6], img[:, :, y0:y0 + 8, :])


def test_foreground_oversampling(tmp_path):
    label = np.zeros((40, 40, 40), dtype=np.uint8)
    label[30:34, 5:9, 20:24] = 1
    image = label[None].astype(np.float32)
    hits = sum(random_crop(image, label, (12, 12, 12), np.random.default_rng(i), 1.0)[1].any()
               for i in range(20))
    assert hits == 20
    uniform = sum(random_crop(image, label, (12, 12, 12), np.random.default_rng(i))[1].any()
                  for i in range(20))
    assert uniform < 20


def test_flip_rot_returns_contiguous_and_skips_rotation_for_non_square():
    img = np.random.default_rng(0).random((1, 8, 6, 4)).astype(np.float32)
    for i in range(8):
        out, lab = random_flip_rot(img, (img[0] > 0.5).astype(np.uint8),
                                   np.random.default_rng(i))
        assert out.shape == img.shape and out.flags.c_contiguous and lab.flags.c_contiguous
        np.testing.assert_array_equal(lab, out[0] > 0.5)
    out, lab = random_flip_rot(img, None, np.random.default_rng(0), flip=False, rot90=False)
    np.testing.assert_array_equal(out, img)
    assert lab is None


def test_only_labelled_slots_when_batch_equals_labeled_bs(cache):
    b = _ds(cache, batch_size=2, labeled_bs=2)[4]
    assert b["image"].shape[0] == 2 and b["label"].shape[0] == 2


def test_bad_arguments(cache):
    with pytest.raises(ConfigError):
        _ds(cache, labeled_bs=5)
    with pytest.raises(ConfigError):
        _ds(cache, labeled=[])
    with pytest.raises(InputError, match="unl0"):
        _ds(cache, labeled=["unl0"])


def test_loader_workers_match_main_process_and_resume(cache):
    ds = _ds(cache)
    serial = list(make_loader(ds, 0, 6, num_workers=0, seed=1))
    parallel = list(make_loader(ds, 0, 6, num_workers=2, seed=1))
    resumed = list(make_loader(ds, 3, 6, num_workers=0, seed=1))
    assert len(serial) == len(parallel) == 6 and len(resumed) == 3
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
        assert a["cases"] == b["cases"]
    for a, b in zip(serial[3:], resumed, strict=True):
        assert torch.equal(a["image"], b["image"])


# -- data-parallel ranks ----------------------------------------------------------------


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_take_disjoint_blocks_of_the_global_batch(cache, world):
    """Rank r's labelled and unlabelled crops are the r-th blocks of one global batch."""
    glob = _ds(cache, batch_size=2 * world, labeled_bs=world)
    ranks = [_ds(cache, batch_size=2, labeled_bs=1, rank=r, world_size=world)
             for r in range(world)]
    for it in (0, 1, 7):
        g, parts = glob[it], [ds[it] for ds in ranks]
        lab = torch.cat([p["image"][:1] for p in parts])
        unl = torch.cat([p["image"][1:] for p in parts])
        assert torch.equal(torch.cat([lab, unl]), g["image"])
        assert torch.equal(torch.cat([p["label"] for p in parts]), g["label"])
        cases = [p["cases"][0] for p in parts] + [p["cases"][1] for p in parts]
        assert cases == g["cases"]
    # world 1, rank 0 is the plain single-process sampler
    one = _ds(cache, rank=0, world_size=1)[3]
    assert torch.equal(one["image"], _ds(cache)[3]["image"])


def test_two_ranks_never_share_a_case_or_a_crop(cache):
    """4 labelled / 2 unlabelled cases, 1 + 1 crops per rank: a pass splits between ranks."""
    kw = dict(labeled=[f"lab{i}" for i in range(4)], unlabeled=["unl0", "unl1"],
              batch_size=2, labeled_bs=1, world_size=2)
    r0, r1 = _ds(cache, rank=0, **kw), _ds(cache, rank=1, **kw)
    seen = []
    for it in range(8):
        a, b = r0[it], r1[it]
        assert a["cases"][0] != b["cases"][0] and a["cases"][1] != b["cases"][1], it
        assert not torch.equal(a["image"], b["image"])
        seen += [a["cases"][0], b["cases"][0]]
    for p in range(4):  # every two iterations the ranks together cover each labelled case
        assert sorted(seen[4 * p:4 * p + 4]) == [f"lab{i}" for i in range(4)]


def test_bad_rank(cache):
    with pytest.raises(ConfigError, match="rank 2"):
        _ds(cache, rank=2, world_size=2)


def test_auto_worker_count_follows_the_machine(monkeypatch):
    from duetseg.data import loader

    assert loader.resolve_num_workers(3) == 3 and loader.resolve_num_workers(0) == 0
    for cores, processes, expected in [(2, 1, 1), (16, 1, 4), (16, 2, 4), (16, 8, 1), (8, 1, 4),
                                       (6, 1, 3), (1, 1, 1)]:
        monkeypatch.setattr(loader.os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)),
                            raising=False)
        assert loader.resolve_num_workers("auto", processes) == expected, (cores, processes)


def test_spatial_augment_rotates_and_zooms_image_and_label_together(tmp_path):
    shape = (48, 44, 40)
    block = np.zeros(shape, np.float32)
    block[14:34, 10:30, 12:28] = 1.0
    img = np.stack([block + 1.0, 2 * block + 3.0])  # every voxel non-zero, no padding value
    np.save(tmp_path / "big.npy", img)
    np.save(tmp_path / "big_seg.npy", block.astype(np.uint8))
    args = dict(labeled=["big"], unlabeled=[], crop_size=CROP, batch_size=2, labeled_bs=1,
                seed=3, foreground_prob=1.0)
    plain = TwoStreamBatches(tmp_path, **args)
    off = TwoStreamBatches(tmp_path, **args, spatial_augment=0.0)
    on, again = (TwoStreamBatches(tmp_path, **args, spatial_augment=1.0) for _ in range(2))
    changed = 0
    for it in range(12):
        assert torch.equal(plain[it]["image"], off[it]["image"])  # p = 0: batches unchanged
        b = on[it]
        assert torch.equal(b["image"], again[it]["image"])  # a pure function of the iteration
        assert b["image"].shape == (2, 2, *CROP) and b["label"].shape == (1, *CROP)
        # the window read covers the transformed crop: no zero padding inside the volume
        assert float(b["image"][0].min()) >= 1.0
        # nearest-neighbour label and linearly resampled image mark the same block
        agree = (b["image"][0, 0] > 1.5) == (b["label"][0] > 0)
        assert agree.float().mean() > 0.95
        changed += not torch.equal(b["image"], plain[it]["image"])
    assert changed == 12
    with pytest.raises(ConfigError, match="spatial_augment"):
        TwoStreamBatches(tmp_path, **args, spatial_augment=1.5)
