"""Real BraTS cases from ../shared/data (skipped cleanly when the data is absent)."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from duetseg.config import PrepareConfig
from duetseg.data.cache import load_original_label
from duetseg.data.geometry import restore_to_original, write_like_original
from duetseg.data.prepare import prepare_dataset

BRATS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brats-dev"

pytestmark = pytest.mark.skipif(not BRATS.exists(), reason=f"real data absent: {BRATS}")


@pytest.fixture(scope="module")
def two_cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    for case in sorted(p.name for p in BRATS.iterdir() if p.is_dir())[:2]:
        (root / case).symlink_to(BRATS / case)
    return root


def test_real_cases_prepare_and_round_trip(two_cases, tmp_path):
    cfg = PrepareConfig(modalities=["t1ce", "t2"], layout="brats", label_mapping="whole_tumour")
    cache = prepare_dataset(two_cases, tmp_path / "cache", cfg, num_workers=1, progress=False)
    assert len(cache.labelled_cases) == 2
    for case in cache.cases:
        image = cache.load_image(case)
        assert image.shape[0] == 2 and image.shape[1] < 240  # cropped to the brain
        for channel in np.asarray(image):  # z-scored over each scan's brain (default)
            brain = channel[channel != 0]
            assert abs(float(brain.mean())) < 0.05 and abs(float(brain.std()) - 1.0) < 0.05
        props = cache.properties(case)
        out = tmp_path / f"{case}.nii.gz"
        write_like_original(restore_to_original(np.asarray(cache.load_label(case)), props,
                                                is_label=True), props, out)
        ref, spacing = load_original_label(Path(props["label_file"]), cfg, case)
        back = nib.load(out)
        assert np.array_equal(np.asarray(back.dataobj), ref)
        np.testing.assert_allclose(back.affine, nib.load(props["label_file"]).affine, atol=1e-4)
        assert spacing == pytest.approx((1.0, 1.0, 1.0))
