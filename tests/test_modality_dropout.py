"""Modality dropout: sampling, masked losses, training, prediction with a modality missing."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from _nifti import LPS, RAS, head_image, write_nifti

from duetseg.config import MethodConfig, ModelConfig, load_config
from duetseg.data.discovery import discover_cases
from duetseg.data.geometry import restore_to_original
from duetseg.data.preprocess import fill_missing_modalities, preprocess_case
from duetseg.data.sampling import TwoStreamBatches
from duetseg.errors import ConfigError, InputError
from duetseg.methods import MethodContext, build_method
from duetseg.methods.losses import (
    SupervisedLoss,
    cross_branch_mse,
    masked_branch_consistency,
    masked_branch_supervised,
)
from duetseg.methods.pseudo_label_losses import cross_pseudo_supervision
from duetseg.run.checkpoint import load_checkpoint
from duetseg.run.trained import load_trained_run, predict_probabilities
from duetseg.training import train
from duetseg.workflows.disagreement import normalised_entropy
from duetseg.workflows.missing import present_outputs
from duetseg.workflows.predict import CSV_COLUMNS, predict_folder

pytestmark = pytest.mark.usefixtures("one_thread")

CROP = (12, 12, 8)


# ---------------------------------------------------------------- sampling


@pytest.fixture(scope="module")
def npy_cache(tmp_path_factory):
    """Three-channel cases; every voxel of every channel is non-zero."""
    root = tmp_path_factory.mktemp("npy")
    rng = np.random.default_rng(0)
    for name, labelled in [(f"lab{i}", True) for i in range(4)] + [("unl0", False),
                                                                    ("unl1", False)]:
        np.save(root / f"{name}.npy", (rng.random((3, 16, 14, 10)) + 0.5).astype(np.float32))
        if labelled:
            np.save(root / f"{name}_seg.npy", (rng.random((16, 14, 10)) > 0.5).astype(np.uint8))
    return root


def _ds(root, **kw):
    args = dict(labeled=[f"lab{i}" for i in range(4)], unlabeled=["unl0", "unl1"],
                crop_size=CROP, batch_size=4, labeled_bs=2, seed=3, rot90=False)
    return TwoStreamBatches(root, **{**args, **kw})


def test_zero_dropout_changes_nothing(npy_cache):
    plain, zero = _ds(npy_cache), _ds(npy_cache, modality_dropout=0.0)
    for it in (0, 5, 11):
        a, b = plain[it], zero[it]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
        assert a["present"].dtype == torch.bool and a["present"].shape == (4, 3)
        assert bool(a["present"].all()) and bool(b["present"].all())


def test_dropout_zeroes_exactly_one_modality_at_rate_p(npy_cache):
    p = 0.4
    plain, dropped = _ds(npy_cache), _ds(npy_cache, modality_dropout=p)
    rows, chosen = [], []
    for it in range(150):
        a, b = plain[it], dropped[it]
        present = b["present"]
        # crops, labels and augmentation are those of the run without dropout
        assert torch.equal(a["label"], b["label"]) and a["cases"] == b["cases"]
        assert torch.equal(b["image"][present], a["image"][present])
        assert (b["image"][~present] == 0).all()
        assert bool(present.any(1).all())  # never all modalities
        n_absent = (~present).sum(1)
        assert int(n_absent.max()) <= 1
        rows.extend(n_absent.tolist())
        chosen.extend((~present[n_absent == 1]).float().argmax(1).tolist())
    rate = float(np.mean(rows))
    assert abs(rate - p) < 0.06, rate  # 600 crops: 4 standard deviations is 0.08
    counts = np.bincount(chosen, minlength=3) / len(chosen)
    assert np.all(np.abs(counts - 1 / 3) < 0.08), counts


def test_dropout_is_a_pure_function_of_seed_and_iteration(npy_cache):
    a, b = _ds(npy_cache, modality_dropout=0.5), _ds(npy_cache, modality_dropout=0.5)
    masks = [a[it]["present"] for it in range(20)]
    for it in (13, 2, 7):  # another order, another instance
        y = b[it]
        assert torch.equal(masks[it], y["present"])
        assert torch.equal(a[it]["image"], y["image"])
    assert any(not torch.equal(masks[0], m) for m in masks[1:])
    other = _ds(npy_cache, modality_dropout=0.5, seed=4)
    assert any(not torch.equal(masks[it], other[it]["present"]) for it in range(20))
    # data-parallel ranks draw their slots of the global batch's masks
    whole = _ds(npy_cache, modality_dropout=0.5, batch_size=8, labeled_bs=4)
    parts = [_ds(npy_cache, modality_dropout=0.5, rank=r, world_size=2) for r in (0, 1)]
    for it in range(5):
        lab = [p[it]["present"][:2] for p in parts]
        unl = [p[it]["present"][2:] for p in parts]
        assert torch.equal(whole[it]["present"], torch.cat(lab + unl))


def test_one_modality_and_bad_rates(tmp_path):
    np.save(tmp_path / "c.npy", np.ones((1, 12, 12, 8), np.float32))
    np.save(tmp_path / "c_seg.npy", np.zeros((12, 12, 8), np.uint8))
    ds = TwoStreamBatches(tmp_path, ["c"], [], CROP, 2, 1, seed=0, modality_dropout=0.9)
    for it in range(10):  # the only modality is never dropped
        b = ds[it]
        assert bool(b["present"].all()) and bool((b["image"] == 1).all())
    for p in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="modality_dropout"):
            TwoStreamBatches(tmp_path, ["c"], [], CROP, 2, 1, seed=0, modality_dropout=p)
    with pytest.raises(ConfigError, match="modality_dropout"):
        load_config("demo", ["train.modality_dropout=1.0"])
    assert load_config("demo").train.modality_dropout == 0.0


# ---------------------------------------------------------------- masked losses


def _method(name, modalities=("t1ce", "t2"), **options):
    """Tiny DuetNet method without fusion, in eval mode: with no dropout, BatchNorm uses its
    running statistics, so each crop's output depends on that crop only."""
    torch.manual_seed(0)
    model = ModelConfig(base_width=2, dropout=0.0, fusion="none", mae=False)
    ctx = MethodContext(tuple(modalities), 2, model,
                        MethodConfig(name=name, rampup_fraction=0.0, options=options), 100)
    return build_method(ctx).eval()


def _masked_batch(present):
    """A batch and its mask. The absent inputs are *not* zeroed here: a zero image gives a
    zero input gradient anyway (zero biases, ReLU), which would make the checks vacuous."""
    g = torch.Generator().manual_seed(2)
    present = torch.tensor(present, dtype=torch.bool)
    image = torch.rand(present.shape[0], present.shape[1], 16, 16, 16, generator=g)
    label = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    label[:, 4:11, 5:12, 3:10] = 1
    return image.requires_grad_(), label, present


def _input_grad(method, image, label, present):
    method.set_present(present)
    loss = method.training_losses(image, label, 50)["loss"]
    (grad,) = torch.autograd.grad(loss, [image])
    return grad.abs().flatten(2).amax(2)  # (B, K): largest gradient per crop and input


@pytest.mark.parametrize("consistency", ["mse", "cross_pseudo"])
def test_ours_gives_an_absent_input_no_gradient(consistency):
    method = _method("ours", consistency=consistency)
    # crops 0, 1 labelled; crop 2 (unlabelled) has one branch left: no consistency at all
    image, label, present = _masked_batch([[0, 1], [1, 1], [1, 0], [1, 1]])
    assert (_input_grad(method, image, label, None) > 0).all()  # every input counts...
    grad = _input_grad(method, image, label, present)  # ... until it is absent
    assert grad[0, 0] == 0 and grad[0, 1] > 0
    assert (grad[1] > 0).all() and (grad[3] > 0).all()
    assert (grad[2] == 0).all()


def test_ours_three_modalities_compares_the_present_branches():
    method = _method("ours", modalities=("a", "b", "c"))
    image, label, present = _masked_batch([[0, 1, 1], [1, 1, 1], [1, 0, 1], [0, 1, 0]])
    assert (_input_grad(method, image, label, None) > 0).all()
    grad = _input_grad(method, image, label, present)
    assert grad[0, 0] == 0 and (grad[0, 1:] > 0).all()
    assert grad[2, 1] == 0 and grad[2, 0] > 0 and grad[2, 2] > 0
    assert (grad[3] == 0).all()  # one branch left in an unlabelled crop


def test_all_present_mask_is_the_unmasked_path_bit_for_bit():
    method = _method("ours")
    image, label, _ = _masked_batch([[1, 1]] * 4)
    method.set_present(None)
    plain = method.training_losses(image, label, 50)
    method.set_present(torch.ones(4, 2, dtype=torch.bool))
    assert method.present_mask() is None
    same = method.training_losses(image, label, 50)
    assert all(torch.equal(plain[k], same[k]) for k in plain)


def test_masked_losses_reduce_to_the_plain_ones_and_keep_every_branch_in_the_graph():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(4, 3, 4, 4, 4, generator=g, requires_grad=True) for _ in range(3)]
    label = torch.randint(0, 3, (2, 4, 4, 4), generator=g)
    sup = SupervisedLoss()
    full = torch.ones(4, 3, dtype=torch.bool)
    plain = sum(sup(lg[:2], label) for lg in logits)
    assert torch.allclose(masked_branch_supervised(sup, logits, label, full), plain)
    for fn in (lambda lg: cross_branch_mse([torch.softmax(t, 1) for t in lg]),
               lambda lg: cross_pseudo_supervision(lg, sup)):
        assert torch.allclose(masked_branch_consistency(fn, logits, full), fn(logits))
    # branch 0 absent in crop 1: its Dice (over the batch) is over crop 0 only
    mask = full.clone()
    mask[1, 0] = False
    expected = sup(logits[0][:1], label[:1]) + sum(sup(lg[:2], label) for lg in logits[1:])
    assert torch.allclose(masked_branch_supervised(sup, logits, label, mask), expected)
    # branch 0 absent everywhere: zero loss, but a (zero) gradient rather than none
    mask[:, 0] = False
    loss = (masked_branch_supervised(sup, logits, label, mask)
            + masked_branch_consistency(lambda lg: cross_branch_mse(lg), logits, mask))
    grad = torch.autograd.grad(loss, logits[0])[0]
    assert grad is not None and grad.abs().max() == 0


@pytest.mark.parametrize("name", ["ours", "supervised"])
def test_every_parameter_still_gets_a_gradient_when_a_branch_is_absent_everywhere(name):
    """Data-parallel training needs a gradient (zero is fine) for every parameter."""
    torch.manual_seed(0)
    ctx = MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=2, fusion="none"),
                        MethodConfig(name=name), max_iterations=10)
    method = build_method(ctx).train()
    n = 4 if method.uses_unlabeled else 2
    image = torch.rand(n, 2, 16, 16, 16)
    image[:, 0] = 0.0
    method.set_present(torch.tensor([[False, True]] * n))
    method.training_losses(image, (image[:2, 1] > 0.5).long(), 9)["loss"].backward()
    decoder_a = list(method.net.decoders[0].parameters())
    assert all(p.grad is not None for p in method.parameters() if p.requires_grad)
    assert all(p.grad.abs().max() == 0 for p in decoder_a)


def test_supervised_masks_duetnet_branches_and_vnet_ignores_the_mask():
    method = _method("supervised")
    image, label, present = _masked_batch([[0, 1], [1, 1]])
    assert (_input_grad(method, image, label, None) > 0).all()
    grad = _input_grad(method, image, label, present)
    assert grad[0, 0] == 0 and grad[0, 1] > 0 and (grad[1] > 0).all()
    vnet = _method("supervised", network="vnet")
    vnet.set_present(present)
    masked = vnet.training_losses(image, label, 0)["loss"]
    vnet.set_present(None)
    assert torch.equal(masked, vnet.training_losses(image, label, 0)["loss"])


# ---------------------------------------------------------------- training and prediction


def _cfg(cache, **over):
    base = {
        "cache": str(cache.root), "splits.labeled": 2, "splits.val": 1, "splits.test": 1,
        "model.base_width": 2, "model.dropout": 0.0, "train.crop_size": [16, 16, 16],
        "train.batch_size": 4, "train.labeled_bs": 2, "train.num_workers": 0,
        "train.device": "cpu", "train.max_iterations": 2, "train.val_every": 2,
        "train.checkpoint_every": 2, "inference.sw_batch_size": 8, "inference.overlap": 0.25,
    }
    return load_config("demo", [f"{k}={json.dumps(v)}" for k, v in {**base, **over}.items()])


def _train(cache, out, **over):
    train(_cfg(cache, **over), out, progress=False)
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory, synthetic_cache):
    return synthetic_cache(tmp_path_factory.mktemp("md"))


@pytest.fixture(scope="module")
def runs(cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    drop = {"train.modality_dropout": 0.5}
    return {
        "drop": _train(cache, root / "drop", **drop),
        "plain": _train(cache, root / "plain"),
        "single": _train(cache, root / "single", **drop, **{
            "method.name": "supervised", "method.options": {"network": "vnet"}}),
    }


def test_training_with_dropout_passes_masks_and_resumes_exactly(cache, tmp_path, monkeypatch):
    import duetseg.training.trainer as trainer_mod

    seen, fulls = [], []
    real_build = trainer_mod.build_method

    def recording_build(ctx):
        method = real_build(ctx)
        real_set = method.set_present

        def set_present(present, full_image=None):
            seen.append(None if present is None else present.clone())
            fulls.append(full_image)
            real_set(present, full_image)

        method.set_present = set_present
        return method

    over = {"train.modality_dropout": 0.5, "train.max_iterations": 4, "train.val_every": 4,
            "train.checkpoint_every": 2, "model.dropout": 0.5}
    monkeypatch.setattr(trainer_mod, "build_method", recording_build)
    straight = _train(cache, tmp_path / "straight", **over)
    monkeypatch.setattr(trainer_mod, "build_method", real_build)
    assert len(seen) == 4 and all(m is not None and m.shape == (4, 2) for m in seen)
    assert any(not bool(m.all()) for m in seen)
    # the batch before dropout comes along (ours' missing_distill): the zeroed inputs only
    # differ from it
    assert all(f is not None and f.shape == (4, 2, 16, 16, 16) for f in fulls)
    assert any(bool((f[~m] != 0).any()) for f, m in zip(fulls, seen))
    cfg = _cfg(cache, **over)
    part = tmp_path / "part"
    train(cfg, part, progress=False, stop_at=2)
    train(cfg, part, resume=True, progress=False)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")["method"]
    b = load_checkpoint(part / "checkpoints" / "last.pt")["method"]
    assert all(torch.equal(a[k], b[k]) for k in a)


ODD = (29, 33, 23)
T2_ONLY = (27, 31, 21)  # its own shape and an LPS affine: the output must follow it


@pytest.fixture(scope="module")
def partial_cases(tmp_path_factory):
    """BraTS cases: both modalities, t1ce only, t2 only (own grid); and a CSV manifest."""
    root = tmp_path_factory.mktemp("partial")
    rng = np.random.default_rng(4)
    files = {
        "both": {"t1ce": (head_image(rng, ODD), RAS), "t2": (head_image(rng, ODD), RAS)},
        "only_t1ce": {"t1ce": (head_image(rng, ODD), RAS)},
        "only_t2": {"t2": (head_image(rng, T2_ONLY), LPS)},
    }
    rows = []
    for case, mods in files.items():
        row = {"case": case, "t1ce": "", "t2": ""}
        for mod, (data, affine) in mods.items():
            path = write_nifti(root / "brats" / case / f"{case}_{mod}.nii.gz", data, affine)
            row[mod] = str(path)
        rows.append(row)
    with open(root / "cases.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["case", "t1ce", "t2"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def _rows(out):
    with open(out / "disagreement.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        return {r["case"]: r for r in reader}


def _load(path):
    img = nib.load(str(path))
    return np.asanyarray(img.dataobj), img


def test_predict_with_a_missing_modality(runs, partial_cases, tmp_path):
    out = tmp_path / "out"
    predict_folder(runs["drop"], partial_cases / "brats", out, device="cpu", progress=False,
                   save_probabilities=True, save_disagreement=True)
    rows = _rows(out)
    assert {c: r["modalities_used"] for c, r in rows.items()} == {
        "both": "t1ce+t2", "only_t1ce": "t1ce", "only_t2": "t2"}
    for case, mod, shape in (("only_t2", "t2", T2_ONLY), ("only_t1ce", "t1ce", ODD),
                             ("both", "t1ce", ODD)):
        src = nib.load(str(partial_cases / "brats" / case / f"{case}_{mod}.nii.gz"))
        mask, img = _load(out / f"{case}.nii.gz")
        assert mask.shape == shape
        np.testing.assert_allclose(img.affine, src.affine, atol=1e-5)
    # one branch left: the prediction is that branch's softmax on the zero-filled input,
    # and the disagreement is the normalised entropy of it
    run = load_trained_run(runs["drop"], device="cpu")
    spec = discover_cases(partial_cases / "brats", ["t1ce", "t2"], allow_missing=True)[2]
    assert spec.case == "only_t2" and list(spec.missing) == ["t1ce"]
    case = fill_missing_modalities(preprocess_case(spec, run.cache.settings), ["t1ce", "t2"])
    assert case.properties["missing_modalities"] == ["t1ce"]
    assert (case.image[0] == 0).all() and case.image[1].any()
    branch_b = predict_probabilities(run, case.image)["branch_b"]
    expected = restore_to_original(branch_b, case.properties, is_label=False)
    prob, _ = _load(out / "only_t2_prob.nii.gz")
    np.testing.assert_allclose(np.moveaxis(prob, -1, 0), expected, atol=1e-5)
    dis, _ = _load(out / "only_t2_disagreement.nii.gz")
    np.testing.assert_allclose(dis, normalised_entropy(expected), atol=1e-5)
    # the CSV manifest with empty cells gives the same result
    out_csv = tmp_path / "csv"
    predict_folder(runs["drop"], partial_cases / "cases.csv", out_csv, device="cpu",
                   progress=False)
    assert _rows(out_csv) == {c: {k: r[k] for k in CSV_COLUMNS} for c, r in rows.items()}
    for case in rows:
        assert np.array_equal(_load(out_csv / f"{case}.nii.gz")[0],
                              _load(out / f"{case}.nii.gz")[0])


def test_single_network_predicts_from_the_zero_filled_input(runs, partial_cases, tmp_path):
    out = tmp_path / "single"
    predict_folder(runs["single"], partial_cases / "brats", out, device="cpu", progress=False)
    rows = _rows(out)
    assert rows["only_t2"]["modalities_used"] == "t2"
    assert all(r["disagreement"] == r["entropy"] for r in rows.values())
    assert _load(out / "only_t2.nii.gz")[0].shape == T2_ONLY


def test_missing_modality_without_dropout_is_a_clear_error(runs, partial_cases, tmp_path):
    out = tmp_path / "plain"
    with pytest.raises(InputError) as exc:
        predict_folder(runs["plain"], partial_cases / "brats", out, device="cpu",
                       progress=False)
    assert exc.value.case == "only_t1ce" and exc.value.file.endswith("only_t1ce_t2.nii.gz")
    assert "'t2'" in str(exc.value) and "train.modality_dropout" in str(exc.value)
    assert not out.exists() or not any(out.iterdir())
    # the cases with every modality still predict as before
    both = tmp_path / "both_only"
    (both / "both").mkdir(parents=True)
    for mod in ("t1ce", "t2"):
        name = f"both_{mod}.nii.gz"
        (both / "both" / name).write_bytes((partial_cases / "brats" / "both" / name).read_bytes())
    predict_folder(runs["plain"], both, tmp_path / "ok", device="cpu", progress=False)
    assert _rows(tmp_path / "ok")["both"]["modalities_used"] == "t1ce+t2"


def test_a_case_needs_at_least_one_modality(runs, tmp_path):
    manifest = tmp_path / "none.csv"
    manifest.write_text("case,t1ce,t2\nempty,,\n")
    with pytest.raises(InputError, match="none of the modalities") as exc:
        predict_folder(runs["drop"], manifest, tmp_path / "out", device="cpu", progress=False)
    assert exc.value.case == "empty"


def test_discovery_records_missing_modalities_in_every_layout(tmp_path):
    rng = np.random.default_rng(0)
    write_nifti(tmp_path / "brats" / "p1" / "p1_t1ce.nii.gz", head_image(rng))
    write_nifti(tmp_path / "brats" / "p1" / "p1_seg.nii.gz", np.zeros((20, 24, 16), np.uint8))
    write_nifti(tmp_path / "nn" / "imagesTs" / "p1_0001.nii.gz", head_image(rng))
    (tmp_path / "nn" / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "t1ce", "1": "t2"}}))
    mods = ["t1ce", "t2"]
    (spec,) = discover_cases(tmp_path / "brats", mods, allow_missing=True)
    assert list(spec.images) == ["t1ce"] and spec.label is not None
    assert spec.missing == {"t2": tmp_path / "brats" / "p1" / "p1_t2.nii.gz"}
    (spec,) = discover_cases(tmp_path / "nn", mods, allow_missing=True)
    assert list(spec.images) == ["t2"]
    assert spec.missing == {"t1ce": tmp_path / "nn" / "imagesTs" / "p1_0000.nii.gz"}
    # strict discovery (prepare) is unchanged
    with pytest.raises(InputError, match="not present in any case"):
        discover_cases(tmp_path / "brats", mods)
    # a modality the manifest has no column for is missing from every case
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"case,t2\np1,{tmp_path / 'nn' / 'imagesTs' / 'p1_0001.nii.gz'}\n")
    (spec,) = discover_cases(manifest, mods, allow_missing=True)
    assert list(spec.images) == ["t2"] and spec.missing == {"t1ce": manifest}


def test_present_outputs_recomputes_the_ensemble():
    rng = np.random.default_rng(0)
    probs = {f"branch_{c}": rng.random((2, 3, 3, 3)).astype(np.float32) for c in "abc"}
    probs["ensemble"] = sum(probs.values()) / 3
    mods = ["t1", "t2", "flair"]
    branches = {f"branch_{c}": m for c, m in zip("abc", mods)}
    assert present_outputs(probs, mods, mods, branches) is probs
    kept = present_outputs(probs, mods, ["t1", "flair"], branches)
    assert sorted(kept) == ["branch_a", "branch_c", "ensemble"]
    np.testing.assert_allclose(kept["ensemble"], (probs["branch_a"] + probs["branch_c"]) / 2)
    single = {"prediction": probs["branch_a"]}
    assert present_outputs(single, mods, ["t2"], {}) == single
