"""Rigid CT + MR registration during preparation (synthetic pairs with a known misalignment)."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest
from _nifti import LPS, PERMUTED, RAS, write_nifti
from pydantic import ValidationError
from scipy import ndimage

from duetseg.cli import main
from duetseg.config import NormalizationConfig, PrepareConfig, RegistrationConfig
from duetseg.data.cache import fingerprint
from duetseg.data.discovery import CaseSpec
from duetseg.data.geometry import restore_to_original, write_like_original
from duetseg.data.preprocess import preprocess_case
from duetseg.data.registration import (
    from_sitk,
    reference_modality,
    register_rigid,
    to_sitk,
    transform_from_entry,
)
from duetseg.errors import InputError

FLIP = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS
SEMI = np.array([25.0, 35.0, 30.0])  # head semi-axes (mm)
# internal blobs: centre (RAS mm), radius (mm), CT (HU), MR (T2-like)
BLOBS = [((10.0, 8.0, 5.0), 7.0, 80.0, 700.0), ((-12.0, -6.0, -4.0), 6.0, -100.0, 150.0),
         ((0.0, -16.0, 9.0), 5.0, 300.0, 900.0), ((-6.0, 18.0, -10.0), 4.0, 60.0, 500.0)]
LANDMARKS = [np.array(c, dtype=float) for c, *_ in BLOBS] + [
    np.array(p, dtype=float) for p in [(22, 0, 0), (0, 30, 0), (0, 0, 26), (-15, -20, 10)]]
MR_SHAPE = (40, 42, 32)
MR_AFFINE = np.diag([2.0, 2.0, 2.5, 1.0])
MR_AFFINE[:3, 3] = [-39.0, -41.0, -39.0]
CT_GRIDS = {  # different spacing, shape and orientation from the MR
    "lps": (np.array([[-2.5, 0, 0, 46.0], [0, -2.5, 0, 44.0], [0, 0, 2.0, -38.0], [0, 0, 0, 1]]),
            (36, 36, 40)),
    "permuted": (np.array([[0, -2.5, 0, 44.0], [0, 0, 2.5, -44.0], [2.0, 0, 0, -38.0],
                           [0, 0, 0, 1]]), (40, 36, 36)),
}
FAST = {"shrink_factors": [2, 1], "smoothing_sigmas": [1.0, 0.0]}


def _rotation(degrees) -> np.ndarray:
    ax, ay, az = np.radians(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _world(shape, affine) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return idx.reshape(-1, 3) @ affine[:3, :3].T + affine[:3, 3]


def phantom(shape, affine, kind: str, motion=None, rng=None) -> np.ndarray:
    """Ellipsoid head with a bone rim and blobs; ``motion`` (R, t): voxel at world p shows
    the head at R p + t. CT in HU (air -1000), MR with another contrast (air 0)."""
    pts = _world(shape, affine)
    if motion is not None:
        pts = pts @ motion[0].T + motion[1]
    r = np.sqrt(((pts / SEMI) ** 2).sum(axis=1))
    ct = kind == "ct"
    vals = np.full(len(pts), -1000.0 if ct else 0.0)
    vals[r < 1.0] = 800.0 if ct else 60.0
    vals[r < 0.86] = 40.0 if ct else 300.0
    for centre, radius, hu, mr in BLOBS:
        vals[((pts - centre) ** 2).sum(axis=1) < radius ** 2] = hu if ct else mr
    vol = ndimage.gaussian_filter(vals.reshape(shape), 0.6)
    if rng is not None:
        vol = vol + rng.normal(0.0, 10.0 if ct else 8.0, shape)
    return vol.astype(np.float32)


def _motion(seed: int):
    rng = np.random.default_rng(seed)
    angles = rng.uniform(5.0, 9.0, 3) * rng.choice([-1, 1], 3)
    return _rotation(angles), rng.uniform(2.0, 5.0, 3) * rng.choice([-1, 1], 3)


def _landmark_error(transform, motion) -> float:
    """Largest distance (mm) between recovered and true CT points of the MR landmarks."""
    rot, shift = motion
    errors = [np.linalg.norm(FLIP @ np.array(transform.TransformPoint((FLIP @ q).tolist()))
                             - rot.T @ (q - shift)) for q in LANDMARKS]
    return float(max(errors))


def write_pair(root, case: str, seed: int, grid: str = "lps", ct_dtype=np.int16,
               labelled: bool = True) -> dict:
    """MR (RAS) + misaligned CT (stored with scl_inter -1024) + label on the MR grid."""
    rng = np.random.default_rng(100 + seed)
    motion = _motion(seed)
    ct_affine, ct_shape = CT_GRIDS[grid]
    hu = phantom(ct_shape, ct_affine, "ct", motion, rng)
    raw = np.clip(np.round(hu + 1024.0), 0, None).astype(ct_dtype)
    ct_img = nib.Nifti1Image(raw, ct_affine)
    ct_img.header.set_slope_inter(1.0, -1024.0)
    paths = {"ct": root / f"{case}_ct.nii.gz", "t2": root / f"{case}_t2.nii.gz"}
    root.mkdir(parents=True, exist_ok=True)
    nib.save(ct_img, str(paths["ct"]))
    write_nifti(paths["t2"], phantom(MR_SHAPE, MR_AFFINE, "mr", rng=rng), MR_AFFINE)
    if labelled:
        blob = np.array(BLOBS[0][0])
        inside = ((_world(MR_SHAPE, MR_AFFINE) - blob) ** 2).sum(axis=1) < BLOBS[0][1] ** 2
        paths["label"] = write_nifti(root / f"{case}_label.nii.gz",
                                     inside.reshape(MR_SHAPE).astype(np.uint8), MR_AFFINE)
    return {"paths": paths, "motion": motion}


def _cfg(**registration) -> PrepareConfig:
    return PrepareConfig(modalities=["ct", "t2"], normalization={
        "ct": NormalizationConfig(scheme="ct_window", window_level=40, window_width=400)},
        registration=RegistrationConfig(enabled=True, **registration))


def _spec(case: str, pair: dict) -> CaseSpec:
    paths = pair["paths"]
    return CaseSpec(case, {"ct": paths["ct"], "t2": paths["t2"]}, paths.get("label"))


@pytest.mark.parametrize("affine", [RAS, LPS, PERMUTED], ids=["ras", "lps", "permuted"])
def test_sitk_image_has_the_nifti_world_coordinates(affine):
    array = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    image = to_sitk(array, affine)
    assert image.GetSize() == (5, 6, 7)
    for index in [(0, 0, 0), (4, 1, 3), (2, 5, 6)]:
        ras = affine[:3, :3] @ np.array(index, dtype=float) + affine[:3, 3]
        assert np.allclose(image.TransformIndexToPhysicalPoint(index), FLIP @ ras)
        assert image[index] == pytest.approx(array[index])
    assert np.array_equal(from_sitk(image), array)


def test_reference_modality_defaults_to_the_mr():
    assert reference_modality(_cfg()) == "t2"
    assert reference_modality(_cfg(reference="ct")) == "ct"
    plain = PrepareConfig(modalities=["t1", "t2"], registration={"enabled": True})
    assert reference_modality(plain) == "t1"
    with pytest.raises(ValidationError, match="flair"):
        _cfg(reference="flair")


def test_fingerprint_ignores_disabled_registration():
    base = PrepareConfig(modalities=["ct", "t2"])
    before = base.model_dump(mode="json")  # the settings as they were before registration
    before.pop("registration")
    assert fingerprint(base) == fingerprint(PrepareConfig(**before))
    assert fingerprint(base) != fingerprint(base.model_copy(
        update={"registration": RegistrationConfig(enabled=True)}))


@pytest.mark.parametrize("grid,seed", [("lps", 0), ("permuted", 1)])
def test_known_misalignment_is_recovered_within_a_voxel(grid, seed):
    motion = _motion(seed)
    angle = np.degrees(np.arccos((np.trace(motion[0]) - 1) / 2))
    assert angle > 7.0 and np.linalg.norm(motion[1]) > 4.0  # a real misalignment
    rng = np.random.default_rng(seed)
    ct_affine, ct_shape = CT_GRIDS[grid]
    fixed = to_sitk(phantom(MR_SHAPE, MR_AFFINE, "mr", rng=rng), MR_AFFINE)
    moving = to_sitk(phantom(ct_shape, ct_affine, "ct", motion, rng), ct_affine)
    cfg = RegistrationConfig(enabled=True)
    transform, info = register_rigid(fixed, moving, cfg)
    assert _landmark_error(transform, motion) < 2.0  # smallest voxel side: 2 mm
    assert info["rotation_deg"] == pytest.approx(angle, abs=2.0)
    assert info["metric"] < info["initial_metric"]
    again, info2 = register_rigid(fixed, moving, cfg)  # seeded sampling: deterministic
    assert np.allclose(info2["parameters"], info["parameters"], atol=1e-9)


def test_registered_case_is_aligned_in_hu_and_restores_exactly(tmp_path, caplog):
    pair = write_pair(tmp_path / "raw", "npc1", seed=2, grid="permuted")
    paths = pair["paths"]
    assert nib.load(paths["ct"]).dataobj.inter == -1024.0  # the file needs its rescale
    caplog.set_level(logging.INFO, logger="duetseg")
    pc = preprocess_case(_spec("npc1", pair), _cfg(**FAST))
    props = pc.properties
    json.dumps(props)
    assert props["modalities"] == ["ct", "t2"] and props["reference_modality"] == "t2"
    entry = props["registration"]["ct"]
    assert entry["reference"] == "t2" and entry["moving_file"] == str(paths["ct"])
    assert entry["metric"] < entry["initial_metric"] and entry["iterations"] > 0
    assert _landmark_error(transform_from_entry(entry), pair["motion"]) < 2.0
    assert any("npc1" in r.getMessage() and "Mattes MI" in r.getMessage()
               for r in caplog.records)
    # CT channel 0, in HU through the window (level 40, width 400; air 0, bone rim 1), matches
    # the aligned CT phantom on the MR grid (trusting the headers alone: mean error 0.075)
    ct, label = pc.image[0], pc.label.astype(bool)
    assert ct.min() == 0.0 and ct.max() == 1.0 and ct[0, 0, 0] == 0.0
    truth = np.clip((phantom(MR_SHAPE, MR_AFFINE, "ct") + 160.0) / 400.0, 0.0, 1.0)
    truth = truth[tuple(slice(lo, hi) for lo, hi in props["crop_bbox"])]
    assert np.abs(ct - truth).mean() < 0.03
    assert np.median(ct[label]) == pytest.approx(0.6, abs=0.05)  # the 80 HU blob
    t2 = pc.image[1][pc.image[1] != 0]  # t2 z-scored over its non-zero voxels (default)
    assert float(t2.mean()) == pytest.approx(0.0, abs=0.05)
    # a "prediction" (the cached label) goes back into the MR's original geometry exactly
    restored = restore_to_original(pc.label, props, is_label=True)
    out = tmp_path / "pred" / "npc1.nii.gz"
    write_like_original(restored, props, out)
    reference, written = nib.load(paths["label"]), nib.load(out)
    assert written.shape == reference.shape == MR_SHAPE
    assert np.allclose(written.affine, nib.load(paths["t2"]).affine, atol=1e-6)
    assert np.array_equal(np.asarray(written.dataobj), np.asarray(reference.dataobj))


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
def test_ct_stored_with_rescale_intercept_comes_out_in_hu(tmp_path, dtype):
    hu = np.full((12, 12, 12), -1000.0)
    hu[3:9, 3:9, 3:9] = 40.0
    hu[5:7, 5:7, 5:7] = 1000.0
    ct = nib.Nifti1Image((hu + 1024).astype(dtype), RAS)
    ct.header.set_slope_inter(1.0, -1024.0)
    nib.save(ct, str(tmp_path / "ct.nii.gz"))
    write_nifti(tmp_path / "t2.nii.gz", np.where(hu > -1000, 100.0, 0.0), RAS)
    spec = CaseSpec("hu", {"ct": tmp_path / "ct.nii.gz", "t2": tmp_path / "t2.nii.gz"}, None)
    out = preprocess_case(spec, PrepareConfig(  # same grid: no registration needed
        modalities=["ct", "t2"], normalization={"ct": NormalizationConfig(scheme="ct_window")}))
    values = {round(float(v), 4) for v in np.unique(out.image[0])}
    assert values == {0.0, 0.5, 1.0}  # air, tissue (40 HU), bone (1000 HU, clipped)


def test_implausible_registration_is_an_input_error(tmp_path):
    pair = write_pair(tmp_path, "tight", seed=3, labelled=False)
    with pytest.raises(InputError, match="max_translation_mm") as exc:
        preprocess_case(_spec("tight", pair), _cfg(max_translation_mm=0.5, **FAST))
    assert exc.value.case == "tight" and exc.value.file == str(pair["paths"]["ct"])
    noise = np.random.default_rng(0).normal(0.0, 300.0, (36, 36, 40)).astype(np.float32)
    write_nifti(pair["paths"]["ct"], noise, CT_GRIDS["lps"][0])
    with pytest.raises(InputError, match="implausible") as exc:
        preprocess_case(_spec("tight", pair), _cfg(**FAST))
    assert exc.value.case == "tight" and exc.value.file == str(pair["paths"]["ct"])


def test_failed_registration_is_an_input_error(tmp_path):
    pair = write_pair(tmp_path, "far", seed=4, labelled=False)
    far = CT_GRIDS["lps"][0].copy()
    far[:3, 3] += 2000.0  # no overlap when trusting the header
    img = nib.load(pair["paths"]["ct"])
    write_nifti(pair["paths"]["ct"], img.get_fdata().astype(np.float32), far)
    with pytest.raises(InputError, match="registration of ct to t2 failed") as exc:
        preprocess_case(_spec("far", pair), _cfg(initialization="header", **FAST))
    assert exc.value.case == "far" and exc.value.file == str(pair["paths"]["ct"])


def test_label_must_be_on_the_reference_grid(tmp_path):
    pair = write_pair(tmp_path, "lab", seed=5)
    ct_img = nib.load(pair["paths"]["ct"])
    write_nifti(pair["paths"]["label"], np.zeros(ct_img.shape, np.uint8), ct_img.affine)
    with pytest.raises(InputError, match="reference t2") as exc:
        preprocess_case(_spec("lab", pair), _cfg(**FAST))
    assert exc.value.file == str(pair["paths"]["label"]) and "lab_t2" in str(exc.value)


def test_different_grids_without_registration_stay_an_error(tmp_path):
    pair = write_pair(tmp_path, "noreg", seed=6, labelled=False)
    cfg = _cfg().model_copy(update={"registration": RegistrationConfig()})
    with pytest.raises(InputError, match="no registration configured"):
        preprocess_case(_spec("noreg", pair), cfg)


def test_modalities_on_one_grid_are_not_registered(tmp_path):
    rng = np.random.default_rng(7)
    paths = {m: write_nifti(tmp_path / f"{m}.nii.gz", phantom(MR_SHAPE, MR_AFFINE, "mr",
                                                              rng=rng), MR_AFFINE)
             for m in ("t1", "t2")}
    spec = CaseSpec("same", paths, None)
    plain = preprocess_case(spec, PrepareConfig(modalities=["t1", "t2"]))
    registered = preprocess_case(spec, PrepareConfig(
        modalities=["t1", "t2"], registration={"enabled": True, "reference": "t2"}))
    assert registered.properties["registration"] == {
        "t1": {"reference": "t2", "moving_file": str(paths["t1"]), "skipped": True}}
    assert plain.properties["registration"] is None
    assert np.array_equal(plain.image, registered.image)


def test_prepare_cli_registers_a_csv_of_ct_mr_pairs(tmp_path, capsys):
    raw = tmp_path / "raw"
    pairs = {"p0": write_pair(raw, "p0", seed=8), "p1": write_pair(raw, "p1", seed=9,
                                                                    labelled=False)}
    rows = ["case,ct,t2,label"] + [
        f"{c},{p['paths']['ct'].name},{p['paths']['t2'].name},"
        f"{p['paths']['label'].name if 'label' in p['paths'] else ''}"
        for c, p in pairs.items()]
    (raw / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "cache"
    main(["prepare", str(raw / "manifest.csv"), "--out", str(out), "--modalities", "ct", "t2",
          "--layout", "csv", "--register", "--reference", "t2", "--norm", "ct=ct_window",
          "--window", "40", "400", "--workers", "2"])
    assert "2 cases (1 labelled)" in capsys.readouterr().out
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["modalities"] == ["ct", "t2"]
    assert meta["settings"]["registration"]["enabled"] is True
    assert meta["settings"]["registration"]["reference"] == "t2"
    for case, pair in pairs.items():
        props = json.loads((out / f"{case}.json").read_text())
        assert props["original_shape"] == list(MR_SHAPE)
        assert _landmark_error(transform_from_entry(props["registration"]["ct"]),
                               pair["motion"]) < 2.0
    with pytest.raises(SystemExit):
        main(["prepare", str(raw / "manifest.csv"), "--out", str(out), "--modalities", "ct",
              "t2", "--layout", "csv", "--reference", "t2"])
    assert "--register" in capsys.readouterr().err
