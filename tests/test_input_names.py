"""BraTS 2018-2021 and 2023+ file names and the modality aliases (t1ce = t1c, t2 = t2w,
flair = t2f = fla, t1 = t1n), on synthetic files and, when present, on real cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _nifti import block_label, head_image, write_nifti

from duetseg.cli import main
from duetseg.config import PrepareConfig
from duetseg.data.discovery import detect_layout, discover_cases
from duetseg.data.modalities import MODALITY_ALIASES, canonical_modality, modality_names
from duetseg.data.prepare import prepare_dataset
from duetseg.errors import InputError

EXTRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brats-unlabelled-extra"


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _case(root: Path, case: str, sep: str, suffixes: tuple[str, ...]) -> None:
    for suffix in suffixes:
        _touch(root / case / f"{case}{sep}{suffix}.nii.gz")


def test_alias_table():
    assert canonical_modality("T1c") == "t1ce" and canonical_modality("t2w") == "t2"
    assert canonical_modality("t2f") == canonical_modality("FLA") == "flair"
    assert canonical_modality("t1n") == "t1" and canonical_modality("CT") == "ct"
    assert modality_names("t2f") == ("flair", "t2f", "fla")
    every = [n for c, a in MODALITY_ALIASES.items() for n in (c, *a)]
    assert len(every) == len(set(every))  # an alias names one modality only


def test_brats_2023_2019_and_toolkit_names_in_one_folder(tmp_path):
    root = tmp_path / "pool"
    for prefix in ("GLI", "MET", "PED", "SSA"):
        _case(root, f"BraTS-{prefix}-00001-000", "-", ("t1c", "t2w", "t2f", "t1n", "seg"))
    _case(root, "BraTS19_TCIA10_311_1", "_", ("t1ce", "t2", "flair", "t1"))
    _case(root, "TCGA-DU-7294", "_", ("t1c", "t2", "fla", "t1"))
    assert detect_layout(root) == "brats"
    specs = {s.case: s for s in discover_cases(root, ["t1ce", "t2", "flair", "t1"])}
    assert len(specs) == 6
    gli = specs["BraTS-GLI-00001-000"]
    assert [p.name.split("-")[-1] for p in gli.images.values()] == [
        "t1c.nii.gz", "t2w.nii.gz", "t2f.nii.gz", "t1n.nii.gz"]
    assert gli.label.name == "BraTS-GLI-00001-000-seg.nii.gz"
    assert specs["TCGA-DU-7294"].images["flair"].name == "TCGA-DU-7294_fla.nii.gz"
    assert specs["BraTS19_TCIA10_311_1"].images["t1ce"].name == "BraTS19_TCIA10_311_1_t1ce.nii.gz"
    assert specs["TCGA-DU-7294"].label is None
    # requested by any alias: the same files, under the requested names
    again = discover_cases(root, ["t1c", "t2w"])[0]
    assert list(again.images) == ["t1c", "t2w"]


def test_alias_errors_name_the_case_and_file(tmp_path):
    root = tmp_path / "pool"
    _case(root, "BraTS-GLI-00002-000", "-", ("t1c", "t2w"))
    _case(root, "BraTS-GLI-00003-000", "-", ("t1c",))
    with pytest.raises(InputError, match=r"BraTS-GLI-00003-000.*BraTS-GLI-00003-000-t2\.nii"
                                         r".*missing modality 't2'"):
        discover_cases(root, ["t1ce", "t2"])
    with pytest.raises(InputError, match="distinct.*aliases"):
        discover_cases(root, ["t1ce", "t1c"])
    _touch(root / "BraTS-GLI-00002-000" / "BraTS-GLI-00002-000_t1ce.nii.gz")
    with pytest.raises(InputError, match="BraTS-GLI-00002-000.*several files for modality "
                                         "'t1ce'"):
        discover_cases(root, ["t1ce"])


def test_aliases_in_csv_columns_and_nnunet_channel_names(tmp_path):
    _touch(tmp_path / "a.nii.gz")
    manifest = tmp_path / "cases.csv"
    manifest.write_text("case,T1c,t2w\nc1,a.nii.gz,a.nii.gz\n")
    assert list(discover_cases(manifest, ["t1ce", "t2"])[0].images) == ["t1ce", "t2"]
    ds = tmp_path / "Dataset001"
    for ch in (0, 1):
        _touch(ds / "imagesTr" / f"p1_{ch:04d}.nii.gz")
    (ds / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T2w", "1": "T1c"}}))
    spec = discover_cases(ds, ["t1ce", "t2"])[0]
    assert spec.images["t1ce"].name == "p1_0001.nii.gz"
    assert spec.images["t2"].name == "p1_0000.nii.gz"


def test_prepare_cli_reads_a_2023_named_folder(tmp_path, capsys):
    rng = np.random.default_rng(3)
    raw = tmp_path / "raw"
    for case in ("BraTS-GLI-00010-000", "BraTS-MET-00020-000"):
        for suffix in ("t1c", "t2w", "t2f"):
            write_nifti(raw / case / f"{case}-{suffix}.nii.gz", head_image(rng))
        write_nifti(raw / case / f"{case}-seg.nii.gz", block_label(rng, values=(0, 1, 2, 3)))
    main(["prepare", str(raw), "--out", str(tmp_path / "cache"), "--modalities", "t1ce", "t2",
          "--workers", "1"])
    meta = json.loads((tmp_path / "cache" / "dataset.json").read_text())
    assert meta["modalities"] == ["t1ce", "t2"] and len(meta["cases"]) == 2
    assert all(c["labelled"] for c in meta["cases"])
    assert "2 cases (2 labelled)" in capsys.readouterr().out


@pytest.mark.skipif(not EXTRA.exists(), reason=f"real data absent: {EXTRA}")
def test_real_unlabelled_pool_with_mixed_names(tmp_path):
    specs = discover_cases(EXTRA, ["t1ce", "t2", "flair", "t1"])
    assert [s.case for s in specs] == ["BraTS-GLI-00001-000", "BraTS-MET-00110-000",
                                       "BraTS19_TCIA10_311_1", "BraTS19_TCIA13_611_1",
                                       "TCGA-DU-7294"]
    assert all(len(s.images) == 4 and s.label is None for s in specs)
    assert specs[0].images["t2"].name == "BraTS-GLI-00001-000-t2w.nii.gz"
    assert specs[4].images["flair"].name == "TCGA-DU-7294_fla.nii.gz"
    one = tmp_path / "one"
    one.mkdir()
    (one / "BraTS-GLI-00001-000").symlink_to(EXTRA / "BraTS-GLI-00001-000")
    cfg = PrepareConfig(modalities=["t1ce", "t2"], layout="brats", label_mapping="identity")
    cache = prepare_dataset(one, tmp_path / "cache", cfg, num_workers=1, progress=False)
    assert cache.cases == ["BraTS-GLI-00001-000"] and cache.labelled_cases == []
    assert cache.load_image("BraTS-GLI-00001-000").shape[0] == 2
