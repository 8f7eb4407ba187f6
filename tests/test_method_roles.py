"""Methods describe their part in a comparison; reports read it and never name a method."""

from __future__ import annotations

from pathlib import Path

import pytest

from duetseg.config import load_config
from duetseg.method_roles import ABLATION_SWITCHES
from duetseg.methods.registry import METHODS, get_method_class
from duetseg.reporting import roles

REPORTING = Path(__file__).resolve().parents[1] / "src" / "duetseg" / "reporting"


def test_reporting_spells_no_method_name():
    found = [(path.name, name) for path in sorted(REPORTING.glob("*.py"))
             for name in METHODS for quoted in (f'"{name}"', f"'{name}'")
             if quoted in path.read_text()]
    assert not found, f"reporting names methods: {found}"


def test_every_method_has_a_role_and_valid_switches():
    for name in METHODS:
        cls = get_method_class(name)
        assert cls.role in ("proposed", "baseline", "bound"), name
        assert set(cls.ablation_switches) <= set(ABLATION_SWITCHES), name
    proposed = [n for n in METHODS if get_method_class(n).role == "proposed"]
    assert proposed == ["ours"]


def test_roles_give_the_defaults_and_the_table_order():
    assert roles.reference_method() == "ours"
    assert roles.default_baseline_method() == "supervised"
    assert roles.table_order() == ["supervised", "mean_teacher", "ict", "entropy_min", "urpc",
                                   "mlrpl", "mmcml", "cmc", "bcp"]
    assert "ours" not in roles.table_order()  # the reference goes last, not by position
    assert roles.methods_with_switch("mcml") == ["ours"]
    assert roles.methods_with_switch("mcml", present=False) == ["supervised"]


def test_unregistered_names_are_plain_baselines():
    assert not roles.is_proposed("ours_w0")
    assert roles.ablation_switches("ours_w0") == ()
    assert roles.ablation_flags("no_such_method", load_config("demo")) is None


@pytest.mark.parametrize(("method", "overrides", "flags"), [
    ("ours", [], {"mmf": True, "mae": True, "mcml": True}),
    ("ours", ["method.options.mcml=false"], {"mmf": True, "mae": True, "mcml": False}),
    ("ours", ["method.consistency_weight=0"], {"mmf": True, "mae": True, "mcml": False}),
    ("ours", ["model.fusion=none", "model.mae=false"],
     {"mmf": False, "mae": False, "mcml": True}),
    ("supervised", ["model.mae=false"], {"mmf": True, "mae": False}),
    ("mean_teacher", [], None),
])
def test_ablation_flags_follow_the_config(method, overrides, flags):
    cfg = load_config("demo", [f"method.name={method}", *overrides])
    assert get_method_class(method).ablation_flags(cfg) == flags
    if flags is not None:
        assert tuple(flags) == get_method_class(method).ablation_switches
