"""Typed config: presets load, overrides apply, unknown keys are errors."""

import pytest

from duetseg.config import Config, MethodConfig, list_presets, load_config
from duetseg.errors import ConfigError


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_validates(name):
    cfg = load_config(name)
    assert isinstance(cfg, Config)
    assert all(s % 16 == 0 for s in cfg.train.crop_size)
    assert cfg.train.labeled_bs <= cfg.train.batch_size


def test_paper_preset_values():
    cfg = load_config("brats19")
    assert cfg.train.crop_size == (96, 96, 96)
    assert (cfg.train.batch_size, cfg.train.labeled_bs) == (4, 2)
    assert cfg.train.max_iterations == 60000 and cfg.train.lr == 0.01
    assert cfg.method.consistency_weight is None and cfg.model.dropout == 0.5  # ours: 1.0
    assert load_config("npc_ct_mr").train.crop_size == (112, 112, 96)


def test_overrides_parse_yaml_values():
    cfg = load_config("demo", ["train.max_iterations=7", "model.fusion=add",
                               "train.crop_size=[16, 16, 32]", "splits.labeled=5%"])
    assert cfg.train.max_iterations == 7
    assert cfg.model.fusion == "add"
    assert cfg.train.crop_size == (16, 16, 32)
    assert cfg.splits.labeled == "5%"
    # Seed 0 is an ordinary split/training seed (only SimpleITK's registration seed is >= 1).
    assert load_config("demo").splits.seed == 0
    assert load_config("demo", ["splits.seed=0", "train.seed=0"]).splits.seed == 0


@pytest.mark.parametrize("override", ["train.max_iteration=5", "modle.base_width=4",
                                      "model.fusion=concat", "train.lr=fast"])
def test_unknown_keys_and_bad_values_are_errors(override):
    with pytest.raises(ConfigError):
        load_config("demo", [override])


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_iterations: 3\n  bogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_config(path)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset"):
        load_config("no_such_preset")


def test_config_round_trips_through_yaml(tmp_path):
    cfg = load_config("cpu_small", ["cache=/tmp/x"])
    path = tmp_path / "config.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


def test_legacy_method_mcml_becomes_an_option_of_ours(tmp_path):
    """Configs written before ``mcml`` moved into ``ours``' options still load the same."""
    assert MethodConfig(mcml=False).options == {"mcml": False}
    assert MethodConfig(mcml=True).options == {}
    assert MethodConfig(mcml=False, options={"mcml": True}).options == {"mcml": True}
    old = tmp_path / "config.yaml"
    old.write_text("method:\n  name: ours\n  mcml: false\n  options: {consistency: mse}\n")
    assert load_config(old).method.options == {"consistency": "mse", "mcml": False}
    assert load_config("demo", ["method.mcml=false"]).method.options["mcml"] is False


def test_ablation_presets_extend_the_paper_setting():
    flags = {name: (c.model.fusion, c.model.mae, c.method.options["mcml"]) for name, c in
             ((n, load_config(n)) for n in list_presets() if n.startswith("ablation_"))}
    assert flags == {
        "ablation_baseline": ("none", False, False),
        "ablation_mmf": ("gate_residual", False, False),
        "ablation_mmf_mae": ("gate_residual", True, False),
        "ablation_mmf_mcml": ("gate_residual", False, True),
        "ablation_full": ("gate_residual", True, True),
    }
    assert load_config("ablation_mmf").train.crop_size == (96, 96, 96)  # from brats19


def test_circular_extends_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text(f"extends: {tmp_path / 'b.yaml'}\n")
    (tmp_path / "b.yaml").write_text(f"extends: {tmp_path / 'a.yaml'}\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.yaml")


def test_paper_preset_pins_the_paper_model_and_objective():
    from duetseg.config import ModelConfig

    cfg = load_config("paper")
    brats = load_config("brats19")
    assert cfg.model == brats.model == ModelConfig(base_width=16)  # today's defaults
    assert (cfg.model.branch_input, cfg.model.fusion, cfg.model.dropout) == ("own",
                                                                            "gate_residual", 0.5)
    assert cfg.method.options == {"consistency": "mse", "pseudo_prior": "off", "mcml": True}
    assert cfg.method.consistency_weight == 1.0 and cfg.method.rampup_fraction == 0.5
    assert cfg.train == brats.train and cfg.method != MethodConfig()
    assert (cfg.inference.mode, cfg.inference.overlap, cfg.inference.blend) == (
        "sliding", 0.33, "constant")
    assert brats.inference.overlap == 0.0


def test_obsolete_backbone_key_of_old_runs(tmp_path):
    """Old run configs hold ``model.backbone: vnet``: accepted and dropped; others refused."""
    from duetseg.config import ModelConfig

    old = load_config("cpu_small", ["model.backbone=vnet"])
    assert old == load_config("cpu_small")
    assert "backbone" not in old.to_yaml()
    path = tmp_path / "config.yaml"
    path.write_text("model:\n  backbone: vnet\n  base_width: 8\n")
    assert load_config(path).model == ModelConfig(base_width=8)
    with pytest.raises(ConfigError, match="backbone 'unet' is not supported"):
        load_config("cpu_small", ["model.backbone=unet"])
