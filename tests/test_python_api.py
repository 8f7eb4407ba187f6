"""``duetseg.Segmenter``: files or arrays in, the ``predict`` pipeline's outputs back."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _nifti import LPS, head_image, write_nifti

import duetseg
from duetseg import Segmentation, Segmenter
from duetseg.errors import InputError
from duetseg.workflows.predict import predict_folder

pytestmark = pytest.mark.usefixtures("one_thread")

DOC = Path(__file__).resolve().parents[1] / "docs" / "python_api.md"
SHAPE = (31, 26, 19)


@pytest.fixture(scope="module")
def case_files(tmp_path_factory):
    """One LPS case in a BraTS folder: ``case/case_t1ce.nii.gz``, ``case/case_t2.nii.gz``."""
    root = tmp_path_factory.mktemp("api_case")
    rng = np.random.default_rng(21)
    return {m: write_nifti(root / "case" / f"case_{m}.nii.gz", head_image(rng, SHAPE), LPS)
            for m in ("t1ce", "t2")}


def test_files_and_arrays_give_the_predict_masks(exported_models, case_files, tmp_path):
    path = exported_models["ours_zip"]
    predict_folder(path, case_files["t1ce"].parent.parent, tmp_path / "cli", device="cpu",
                   progress=False, save_probabilities=True, save_disagreement=True)
    seg = Segmenter.load(path, device="cpu")
    assert seg.modalities == ["t1ce", "t2"] and seg.num_classes == 2
    out = seg.predict({m: str(p) for m, p in case_files.items()})
    assert isinstance(out, Segmentation) and out.modalities_used == ["t1ce", "t2"]
    mask = nib.load(str(tmp_path / "cli" / "case.nii.gz"))
    assert np.array_equal(out.mask, np.asanyarray(mask.dataobj)) and out.mask.shape == SHAPE
    np.testing.assert_allclose(out.affine, mask.affine, atol=1e-5)
    prob = nib.load(str(tmp_path / "cli" / "case_prob.nii.gz")).get_fdata()
    assert out.probabilities.shape == (2, *SHAPE)
    np.testing.assert_allclose(np.moveaxis(out.probabilities, 0, -1), prob, atol=1e-6)
    dis = nib.load(str(tmp_path / "cli" / "case_disagreement.nii.gz")).get_fdata()
    np.testing.assert_allclose(out.disagreement, dis, atol=1e-6)
    arrays = {m: np.asarray(nib.load(str(p)).dataobj) for m, p in case_files.items()}
    same = seg.predict(arrays, affine=mask.affine)
    assert np.array_equal(same.mask, out.mask)
    np.testing.assert_allclose(same.probabilities, out.probabilities, atol=1e-6)
    # without an affine the arrays lie on the identity grid (1 mm voxels)
    identity = seg.predict(arrays)
    np.testing.assert_allclose(identity.affine, np.eye(4))
    assert identity.mask.shape == SHAPE


def test_from_run_and_single_network(exported_models, case_files):
    run = Segmenter.from_run(exported_models["mean_teacher_run"], device="cpu")
    model = Segmenter.load(exported_models["mean_teacher_zip"], device="cpu", backend="torch")
    images = {m: str(p) for m, p in case_files.items()}
    a, b = run.predict(images), model.predict(images)
    assert a.disagreement is None and b.disagreement is None
    assert np.array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)


def test_bad_input_names_what_is_wrong(exported_models, case_files):
    seg = Segmenter.load(exported_models["mean_teacher_zip"], device="cpu")
    good = np.zeros(SHAPE, np.float32)
    with pytest.raises(InputError, match=r"unknown modalities \['flair'\]"):
        seg.predict({"t1ce": good, "t2": good, "flair": good})
    with pytest.raises(InputError, match="t2: expected a 3D numeric array"):
        seg.predict({"t1ce": good, "t2": np.zeros((4, 4))})
    with pytest.raises(InputError, match="4x4"):
        seg.predict({"t1ce": good, "t2": good}, affine=np.eye(3))
    with pytest.raises(InputError, match="missing modality 't2'"):
        seg.predict({"t1ce": str(case_files["t1ce"])})
    with pytest.raises(InputError) as exc:
        seg.predict({"t1ce": str(case_files["t1ce"]), "t2": "absent_t2.nii.gz"})
    assert "absent_t2.nii.gz" in str(exc.value)


def test_the_documented_example_runs(exported_models, case_files, tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    shutil.copy(exported_models["ours_zip"], tmp_path / "model.zip")
    for p in case_files.values():
        shutil.copy(p, tmp_path / p.name)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {"__name__": "doc_example"})


def test_import_is_light():
    code = ("import sys, duetseg; assert 'torch' not in sys.modules; "
            "print(duetseg.__version__, sorted(duetseg.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split()[0] == duetseg.__version__ and "'Segmenter'" in out
