"""Data-parallel training: 2 CPU processes (torchrun + gloo) stay in sync and resume exactly.

One torchrun launch runs this file as a script (``_worker``): ``duetseg train`` through the
CLI, then ``train()`` an uninterrupted run, a killed-and-resumed run and two failing runs,
recording on each rank what was written and sampled. The tests read those records.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig, load_config
from duetseg.methods import MethodContext, build_method
from duetseg.methods.registry import METHODS

ITERATIONS = 6


def _overrides(cache_root: str | Path) -> dict:
    return {
        "cache": str(cache_root), "method.name": "mean_teacher", "splits.labeled": 4,
        "splits.val": 1, "splits.test": 1, "model.base_width": 4, "model.dropout": 0.5,
        "train.crop_size": [32, 16, 16], "train.batch_size": 2, "train.labeled_bs": 1,
        "train.max_iterations": ITERATIONS, "train.val_every": 3, "train.checkpoint_every": 2,
        "train.num_workers": 0, "train.log_every": 1, "inference.sw_batch_size": 4,
    }


def _cfg(cache_root):
    return load_config("demo", [f"{k}={json.dumps(v)}" for k, v in _overrides(cache_root).items()])


# -- the worker (run by torchrun as ``python tests/test_distributed.py CACHE OUT``) ---------


def _worker(cache_root: str, out: Path) -> None:
    import duetseg.training.trainer as trainer
    from duetseg.cli import main as cli_main
    from duetseg.data.sampling import TwoStreamBatches
    from duetseg.errors import ConfigError, DuetsegError

    rank = int(os.environ["RANK"])
    rec: dict = {"saved": [], "prepared": 0, "loggers": 0, "cases": {}, "errors": {},
                 "pid": os.getpid()}
    run = {"name": "cli", "nan_on_rank1": False}
    methods = []

    def counting(fn, key):
        def wrapped(*args, **kwargs):
            rec[key] += 1
            return fn(*args, **kwargs)
        return wrapped

    save = trainer.save_checkpoint
    trainer.save_checkpoint = lambda state, path: (rec["saved"].append(str(path)),
                                                   save(state, path))[1]
    trainer.prepare_run_dir = counting(trainer.prepare_run_dir, "prepared")
    trainer.RunLogger = counting(trainer.RunLogger, "loggers")
    build = trainer.build_method

    def build_and_capture(ctx):
        method = build(ctx)
        methods.append(method)
        if run["nan_on_rank1"] and rank == 1:
            losses = method.training_losses

            def poisoned(image, label, iteration):
                out = losses(image, label, iteration)
                if iteration == 1:
                    out["loss"] = out["loss"] * float("nan")
                return out
            method.training_losses = poisoned
        return method
    trainer.build_method = build_and_capture
    getitem = TwoStreamBatches.__getitem__

    def recording(self, iteration):
        batch = getitem(self, iteration)
        rec["cases"].setdefault(run["name"], {})[int(iteration)] = batch["cases"]
        return batch
    TwoStreamBatches.__getitem__ = recording

    def params(method):
        return {k: v.detach().clone() for k, v in method.named_parameters()}

    # 1. the CLI, as `torchrun -m duetseg train` runs it (creates the process group)
    sets = [x for k, v in _overrides(cache_root).items() if k != "train.max_iterations"
            for x in ("--set", f"{k}={json.dumps(v)}")]
    cli_main(["train", "--out", str(out / "cli"), "--config", "demo", "--iterations", "2",
              "--quiet", *sets])
    cfg = _cfg(cache_root)
    # 2. uninterrupted
    run["name"] = "full"
    trainer.train(cfg, out / "full", progress=False)
    torch.save(params(methods[-1]), out / f"full_rank{rank}.pt")
    # 3. "killed" after 3 iterations (last checkpoint at 2), then resumed
    run["name"] = "part"
    trainer.train(cfg, out / "part", progress=False, stop_at=3)
    run["name"] = "resumed"
    trainer.train(cfg, out / "part", resume=True, progress=False)
    torch.save(params(methods[-1]), out / f"resumed_rank{rank}.pt")
    # 4. rank 0 refuses to overwrite a run: every rank gets the error
    try:
        trainer.train(cfg, out / "full", progress=False)
    except ConfigError as exc:
        rec["errors"]["exists"] = str(exc)
    # 5. a non-finite loss on rank 1 only stops both ranks
    run.update(name="nan", nan_on_rank1=True)
    try:
        trainer.train(cfg, out / "nan", progress=False)
    except DuetsegError as exc:
        rec["errors"]["nan"] = str(exc)
    if rank == 0:  # the weights every rank started from (same seed, same build)
        torch.manual_seed(cfg.train.seed)
        torch.save(params(build(trainer.method_context(cfg, trainer.Cache(cfg.cache)))),
                   out / "init.pt")
    (out / f"record_rank{rank}.json").write_text(json.dumps(rec))


# -- tests ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def launched(tmp_path_factory, synthetic_cache):
    root = tmp_path_factory.mktemp("ddp")
    cache = synthetic_cache(root, n_cases=8, shape=(32, 24, 20), seed=3)
    out = root / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", __file__, str(cache.root), str(out)]
    for attempt in range(3):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode == 0 or not _native_abort(proc.stderr):
            break
        # a rank sometimes dies in native code right after a run (3 launches of about 50
        # seen, cause not found), not in anything these tests assert: warn, launch again
        warnings.warn(f"two-rank launch {attempt + 1} aborted in native code:\n"
                      + proc.stderr[-2000:], stacklevel=1)
        for path in out.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    records = [json.loads((out / f"record_rank{r}.json").read_text()) for r in range(2)]
    return out, records, proc.stdout


def _native_abort(stderr: str) -> bool:
    """A rank ended by ``std::terminate`` (SIGABRT) rather than by a Python error."""
    return "terminate called without an active exception" in stderr


def _load(path):
    return torch.load(path, weights_only=True)


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _assert_same(a[k], b[k])
        elif isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def test_ranks_hold_identical_parameters_after_training(launched):
    out, _, _ = launched
    r0, r1, init = (_load(out / n) for n in ("full_rank0.pt", "full_rank1.pt", "init.pt"))
    assert any(k.startswith("teacher.") for k in r0) and any(k.startswith("net.") for k in r0)
    _assert_same(r0, r1)  # student and EMA teacher alike
    moved = [k for k in r0 if not torch.equal(r0[k], init[k])]
    assert len(moved) > len(r0) // 2  # the step really updated the weights
    _assert_same(_load(out / "resumed_rank0.pt"), _load(out / "resumed_rank1.pt"))


def test_resumed_two_rank_run_matches_the_uninterrupted_one(launched):
    out, records, _ = launched
    full, part = (_load(out / r / "checkpoints" / "last.pt") for r in ("full", "part"))
    assert full["iteration"] == part["iteration"] == ITERATIONS and full["world_size"] == 2
    for key in ("method", "optimizer", "best_metric", "best_iteration"):
        _assert_same({key: full[key]}, {key: part[key]})
    _assert_same(_load(out / "full_rank0.pt"), _load(out / "resumed_rank0.pt"))

    def rows(run):
        with open(out / run / "log.csv") as fh:
            return [r for r in csv.DictReader(fh) if r["loss"]]
    assert [r["iteration"] for r in rows("full")] == [str(i) for i in range(ITERATIONS)]
    assert rows("full") == rows("part")
    for rank in range(2):  # the resumed run re-drew exactly the batches of iterations 2-5
        cases = records[rank]["cases"]
        assert {k: cases["full"][k] for k in cases["resumed"]} == cases["resumed"]
        assert sorted(cases["resumed"], key=int) == [str(i) for i in range(2, ITERATIONS)]


def test_ranks_sample_disjoint_crops(launched):
    _, records, _ = launched
    c0, c1 = (records[r]["cases"]["full"] for r in range(2))
    assert c0.keys() == c1.keys() and len(c0) == ITERATIONS
    labelled = []
    for it in c0:
        assert c0[it][0] != c1[it][0] and c0[it][1] != c1[it][1], (it, c0[it], c1[it])
        labelled.append({c0[it][0], c1[it][0]})
    # two iterations of 2 x 1 labelled crops walk one pass over the 4 labelled cases
    assert len(labelled[0] | labelled[1]) == 4


def test_only_rank_0_writes(launched):
    out, records, stdout = launched
    assert records[1]["saved"] == [] and records[1]["prepared"] == 0
    assert records[1]["loggers"] == 0
    saved = {Path(p).relative_to(out).as_posix() for p in records[0]["saved"]}
    assert {"full/checkpoints/last.pt", "full/checkpoints/best.pt",
            "cli/checkpoints/last.pt"} <= saved
    assert records[0]["prepared"] == 6  # cli, full, part, resumed, exists, nan
    for run in ("cli", "full", "part"):  # event files are named ...<host>.<pid>.<n>
        events = list((out / run / "tensorboard").glob("events.out.tfevents.*"))
        assert events and {int(p.name.split(".")[-2]) for p in events} == {records[0]["pid"]}
    assert stdout.count("trained to iteration 2;") == 1  # the CLI reports on rank 0 only


def test_errors_stop_every_rank(launched):
    _, records, _ = launched
    for rec in records:
        assert "--resume" in rec["errors"]["exists"]
        assert "non-finite loss at iteration 1" in rec["errors"]["nan"]
    assert "rank 1" in records[1]["errors"]["nan"]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_trainable_parameter_gets_a_gradient(name):
    """DDP runs with find_unused_parameters=False unless a method asks otherwise."""
    torch.manual_seed(0)
    ctx = MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4), MethodConfig(name=name),
                        max_iterations=10)
    method = build_method(ctx).train()
    if method.ddp_find_unused_parameters:
        pytest.skip("declares unused parameters")
    image = torch.rand(4 if method.uses_unlabeled else 2, 2, 16, 16, 16)
    label = (image[:2, 0] > 0.5).long()
    for iteration in (0, 9):  # before and after the ramp-ups
        method.zero_grad(set_to_none=True)
        method.training_losses(image, label, iteration)["loss"].backward()
        missing = [n for n, p in method.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, (iteration, missing)


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
