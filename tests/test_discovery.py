"""Case discovery in the BraTS, nnU-Net and CSV layouts."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path

import pytest

from duetseg import cli
from duetseg.config import PrepareConfig
from duetseg.data.discovery import (
    LAYOUT_REGISTRY,
    LAYOUTS,
    CaseSpec,
    Layout,
    ReadOptions,
    detect_layout,
    discover_cases,
)
from duetseg.errors import InputError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _brats(root: Path) -> Path:
    for case in ("BraTS_002", "BraTS_001"):
        _touch(root / case / f"{case}_T1ce.nii.gz")
        _touch(root / case / f"{case}_t2.nii")
        _touch(root / case / f"{case}_flair.nii.gz")
    _touch(root / "BraTS_001" / "BraTS_001_seg.nii.gz")
    return root


def test_brats_layout_case_insensitive_and_unlabelled(tmp_path):
    root = _brats(tmp_path / "ds")
    assert detect_layout(root) == "brats"
    specs = discover_cases(root, ["t2", "T1CE"])
    assert [s.case for s in specs] == ["BraTS_001", "BraTS_002"]
    assert list(specs[0].images) == ["t2", "T1CE"]
    assert specs[0].images["t2"].name == "BraTS_001_t2.nii"
    assert specs[0].images["T1CE"].name == "BraTS_001_T1ce.nii.gz"
    assert specs[0].label.name == "BraTS_001_seg.nii.gz"
    assert specs[1].label is None
    with pytest.raises(InputError, match="BraTS_002.*label required"):
        discover_cases(root, ["t2", "t1ce"], require_labels=True)


def test_brats_missing_modality_names_case(tmp_path):
    root = _brats(tmp_path / "ds")
    (root / "BraTS_002" / "BraTS_002_flair.nii.gz").unlink()
    with pytest.raises(InputError, match="BraTS_002.*missing modality 'flair'"):
        discover_cases(root, ["t1ce", "flair"])
    with pytest.raises(InputError, match="'t1' not present.*available"):
        discover_cases(root, ["t1", "t2"])


def _nnunet(root: Path, with_json: bool = True, split: str = "Tr") -> Path:
    for case in ("pat_b", "pat_a", "pat_c"):
        _touch(root / f"images{split}" / f"{case}_0000.nii.gz")
        _touch(root / f"images{split}" / f"{case}_0001.nii.gz")
    _touch(root / f"labels{split}" / "pat_a.nii.gz")
    _touch(root / f"labels{split}" / "pat_b.nii.gz")
    if with_json:
        meta = {"channel_names": {"0": "T1ce", "1": "T2"}, "labels": {"background": 0, "t": 1}}
        (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_nnunet_layout_channel_names(tmp_path):
    root = _nnunet(tmp_path / "ds")
    assert detect_layout(root) == "nnunet"
    specs = discover_cases(root, ["t2", "t1ce"], layout="nnunet")
    assert [s.case for s in specs] == ["pat_a", "pat_b", "pat_c"]
    assert specs[0].images["t2"].name == "pat_a_0001.nii.gz"
    assert specs[0].images["t1ce"].name == "pat_a_0000.nii.gz"
    assert specs[0].label.name == "pat_a.nii.gz"
    assert specs[2].label is None
    with pytest.raises(InputError, match="'flair' not present"):
        discover_cases(root, ["t1ce", "flair"])


def test_nnunet_without_json_and_imagests(tmp_path):
    root = _nnunet(tmp_path / "ds", with_json=False, split="Ts")
    specs = discover_cases(root, ["0000", "1"])
    assert specs[1].images["1"].name == "pat_b_0001.nii.gz"
    assert specs[1].label.name == "pat_b.nii.gz"
    with pytest.raises(InputError, match="no dataset.json"):
        discover_cases(root, ["t1ce", "t2"])
    (root / "imagesTs" / "pat_c_0001.nii.gz").unlink()
    with pytest.raises(InputError, match="pat_c.*missing modality '1'"):
        discover_cases(root, ["0000", "1"])


def test_csv_layout(tmp_path):
    data = tmp_path / "data"
    for case in ("c1", "c2"):
        for mod in ("ct", "mr", "seg"):
            _touch(data / f"{case}_{mod}.nii.gz")
    manifest = tmp_path / "list.csv"
    manifest.write_text("case,CT,MR,label\n"
                        "c2,data/c2_ct.nii.gz,data/c2_mr.nii.gz,\n"
                        f"c1,data/c1_ct.nii.gz,{data / 'c1_mr.nii.gz'},data/c1_seg.nii.gz\n")
    assert detect_layout(manifest) == "csv"
    specs = discover_cases(manifest, ["mr", "ct"])
    assert specs == [
        CaseSpec("c1", {"mr": data / "c1_mr.nii.gz", "ct": data / "c1_ct.nii.gz"},
                 data / "c1_seg.nii.gz"),
        CaseSpec("c2", {"mr": data / "c2_mr.nii.gz", "ct": data / "c2_ct.nii.gz"}, None),
    ]
    with pytest.raises(InputError, match="'pet' not present"):
        discover_cases(manifest, ["ct", "pet"])


def test_csv_errors(tmp_path):
    _touch(tmp_path / "a.nii.gz")
    manifest = tmp_path / "list.csv"
    manifest.write_text("case,ct,mr\nc1,a.nii.gz,a.nii.gz\nc1,a.nii.gz,a.nii.gz\n")
    with pytest.raises(InputError, match="c1.*duplicate"):
        discover_cases(manifest, ["ct", "mr"])
    manifest.write_text("case,ct,mr\nc7,a.nii.gz,missing.nii.gz\n")
    with pytest.raises(InputError, match="c7.*missing.nii.gz.*not found"):
        discover_cases(manifest, ["ct", "mr"])
    manifest.write_text("case,ct,mr\n")
    with pytest.raises(InputError, match="empty dataset"):
        discover_cases(manifest, ["ct", "mr"])


def test_unknown_layout_and_missing_path(tmp_path):
    (tmp_path / "stuff").mkdir()
    _touch(tmp_path / "stuff" / "readme.txt")
    with pytest.raises(InputError, match="unknown dataset layout"):
        discover_cases(tmp_path / "stuff", ["a", "b"])
    with pytest.raises(InputError, match="does not exist"):
        detect_layout(tmp_path / "nope")
    with pytest.raises(InputError, match="empty dataset"):
        discover_cases(tmp_path / "stuff", ["a", "b"], layout="brats")


def test_layout_registry_drives_the_config_and_the_cli():
    assert LAYOUTS == tuple(LAYOUT_REGISTRY) == ("brats", "nnunet", "csv", "nnunet_flat")
    allowed = typing.get_args(PrepareConfig.model_fields["layout"].annotation)
    assert allowed == ("auto", *LAYOUT_REGISTRY)
    for command in (cli.prepare, cli.predict):
        option = inspect.signature(command, eval_str=True).parameters["layout"]
        assert option.annotation.__metadata__[0].help == ("auto | brats | nnunet | csv | "
                                                          "nnunet_flat")


def test_layout_registry_drives_detection_and_discovery(tmp_path, monkeypatch):
    def discover_txt(root: Path, modalities: list[str], options: ReadOptions) -> list[CaseSpec]:
        return [CaseSpec(c, {m: root.parent / f"{c}_{m}.nii.gz" for m in modalities}, None)
                for c in root.read_text().split()]

    monkeypatch.setitem(LAYOUT_REGISTRY, "txt", Layout(
        lambda root: root.suffix == ".txt", discover_txt, "a .txt case list", precedence=-1))
    listing = tmp_path / "cases.txt"
    listing.write_text("c2\nc1\n")
    for case in ("c1", "c2"):
        for mod in ("a", "b"):
            _touch(tmp_path / f"{case}_{mod}.nii.gz")
    assert detect_layout(listing) == "txt"
    for layout in ("auto", "txt"):
        assert [s.case for s in discover_cases(listing, ["a", "b"], layout)] == ["c1", "c2"]
    (tmp_path / "stuff").mkdir()
    with pytest.raises(InputError, match="expected a .txt case list, a .csv manifest, a "
                                         "folder with imagesTr/ \\(nnU-Net\\), a folder of "
                                         "case folders .* or a folder of nnU-Net channel"):
        detect_layout(tmp_path / "stuff")
    assert detect_layout(_brats(tmp_path / "ds")) == "brats"


def test_detection_precedence_and_layout_errors(tmp_path):
    """nnU-Net's imagesTr/ wins over case folders; a non-CSV file and a bad name are refused."""
    root = _brats(tmp_path / "ds")
    assert detect_layout(root) == "brats"
    (root / "imagesTr").mkdir()
    assert detect_layout(root) == "nnunet"
    with pytest.raises(InputError, match="a file input must be a .csv manifest"):
        detect_layout(_touch(tmp_path / "cases.json"))
    with pytest.raises(InputError, match="unknown layout 'nifti'; choose one of "
                                         "\\('brats', 'nnunet', 'csv', 'nnunet_flat'\\)"):
        discover_cases(root, ["t2"], layout="nifti")
