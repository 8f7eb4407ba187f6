"""Methods declare their outputs as data (``Method.outputs``); reports read them back."""

import json

import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.methods import MethodContext, build_method
from duetseg.methods.registry import METHODS
from duetseg.output_spec import OutputSpec, legacy_output_specs, specs_from_summary
from duetseg.reporting.collect import RunRecord

MODS = ("t1ce", "t2")
VARIANTS = [(name, {}) for name in sorted(METHODS)] + [("supervised", {"network": "vnet"})]


def _method(name, options):
    ctx = MethodContext(MODS, 2, ModelConfig(base_width=4, dropout=0.0),
                        MethodConfig(name=name, options=options), max_iterations=10)
    return build_method(ctx).eval()


def _record(summary, outputs):
    rows = [{"case": "c1", "output": o, "class": 1, "dice": 0.5} for o in outputs]
    return RunRecord(run_dir=None, method="m", labeled=1, labeled_spec="1", labeled_percent=1.0,
                     seed=0, mmf=True, mae=True, mcml=True,
                     primary_output=summary.get("primary_output", outputs[0]), rows=rows,
                     summary=summary, config=None)


def _old_is_dual_branch(outputs):
    return "branch_a" in outputs and "branch_b" in outputs


def _old_output_modality(summary, output):
    desc = str(summary.get("outputs", {}).get(output, ""))
    prefix = "branch reading "
    return desc[len(prefix):].strip() if desc.startswith(prefix) else output


@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_outputs_match_output_probabilities_and_primary(name, options):
    method = _method(name, options)
    with torch.no_grad():
        probs = method.output_probabilities(torch.rand(1, 2, 16, 16, 16))
    specs = method.outputs()
    assert [s.name for s in specs] == list(probs)
    primaries = [s.name for s in specs if s.primary]
    assert primaries == [method.primary_output]
    assert list(method.describe_outputs()) == [s.name for s in specs]
    branches = [s for s in specs if s.kind == "branch"]
    assert [s.modality for s in branches] == (list(MODS) if branches else [])
    assert all(s.modality is None for s in specs if s.kind != "branch")
    # the specs survive summary.json
    stored = json.loads(json.dumps([s.to_dict() for s in specs]))
    assert [OutputSpec.from_dict(d) for d in stored] == specs


@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_new_and_old_summaries_read_alike(name, options):
    method = _method(name, options)
    names = [s.name for s in method.outputs()]
    old = {"primary_output": method.primary_output, "outputs": method.describe_outputs()}
    new = {**old, "output_specs": [s.to_dict() for s in method.outputs()]}
    old_run, new_run = _record(old, names), _record(new, names)
    assert old_run.output_specs == legacy_output_specs(names, old["outputs"],
                                                       method.primary_output)
    assert new_run.output_specs == method.outputs()
    for run in (old_run, new_run):
        assert run.is_dual_branch == _old_is_dual_branch(names)
    for output in names:
        assert old_run.output_modality(output) == _old_output_modality(old, output)
        if name in ("ours", "supervised"):  # "branch reading <modality>" descriptions
            assert new_run.output_modality(output) == _old_output_modality(old, output)
    assert new_run.branch_outputs == old_run.branch_outputs


def test_old_summary_without_output_specs():
    outputs = {"branch_a": "branch reading t1ce", "branch_b": "branch reading t2",
               "ensemble": "mean of the branches' softmax"}
    summary = {"primary_output": "ensemble", "outputs": outputs}
    run = _record(summary, ["branch_a", "branch_b", "ensemble"])
    assert run.is_dual_branch and run.branch_outputs == ["branch_a", "branch_b"]
    assert [run.output_modality(o) for o in outputs] == ["t1ce", "t2", "ensemble"]
    assert [s.kind for s in run.output_specs] == ["branch", "branch", "ensemble"]
    assert [s.primary for s in run.output_specs] == [False, False, True]
    single = _record({"primary_output": "prediction"}, ["prediction"])
    assert not single.is_dual_branch and single.output_modality("prediction") == "prediction"
    assert single.output_specs == [OutputSpec("prediction", "single", None, True)]
    assert specs_from_summary({}, [], "") == []
