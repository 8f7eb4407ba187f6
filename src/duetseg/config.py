"""Typed configuration (pydantic) for preparation and training.

Every model forbids unknown keys, so a typo in a YAML file is an error, not a silent default.
Presets live in ``duetseg/presets/*.yaml``; ``load_config`` merges a preset or file with
dotted overrides such as ``train.max_iterations=200``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from duetseg.data.discovery import LAYOUTS
from duetseg.errors import ConfigError

__all__ = [
    "StrictModel",
    "NormalizationConfig",
    "RegistrationConfig",
    "PrepareConfig",
    "SplitConfig",
    "ModelConfig",
    "MethodConfig",
    "TrainConfig",
    "InferenceConfig",
    "Config",
    "PRESET_DIR",
    "list_presets",
    "load_config",
    "apply_overrides",
]

PRESET_DIR = Path(__file__).parent / "presets"

Triple = tuple[int, int, int]
# "auto" or an input layout of duetseg.data.discovery.LAYOUT_REGISTRY
LayoutName = Literal[("auto", *LAYOUTS)]


class StrictModel(BaseModel):
    """Base model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NormalizationConfig(StrictModel):
    """Intensity normalisation of one modality.

    ``minmax`` (the paper) maps the non-zero range to [0, 1]; ``percentile_minmax`` clips to
    the given percentiles of non-zero voxels first; ``zscore_nonzero`` standardises with the
    mean/std of non-zero voxels; ``ct_window`` maps the HU window level ± width/2 to [0, 1].
    """

    scheme: Literal["minmax", "percentile_minmax", "zscore_nonzero", "ct_window"] = "minmax"
    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    window_level: float = 40.0
    window_width: float = 400.0


class RegistrationConfig(StrictModel):
    """Rigid registration of modalities to a reference one (CT + MR), see
    :mod:`duetseg.data.registration`.

    ``reference`` None means the first modality whose normalisation is not ``ct_window`` (the
    MR), else the first modality. ``initialization``: ``geometry`` aligns the image centres,
    ``moments`` the intensity centres of mass, ``header`` trusts the files' world
    coordinates. The plausibility limits bound the rotation and the shift of the reference
    image's centre that the optimiser adds to the initialisation; the final metric (Mattes MI,
    lower is better) must beat the initial one and stay below ``max_metric`` (None: no bound;
    -0.05 rejects images that share no structure, whose MI is about 0). ``skip_same_grid``: a
    modality already on the reference grid is taken as aligned and not registered.
    """

    enabled: bool = False
    reference: str | None = None
    initialization: Literal["geometry", "moments", "header"] = "geometry"
    skip_same_grid: bool = True
    histogram_bins: int = Field(default=32, ge=4)
    sampling_percentage: float = Field(default=0.25, gt=0.0, le=1.0)
    seed: int = Field(default=1, ge=1)  # SimpleITK reads seed 0 as "wall clock"
    learning_rate: float = Field(default=2.0, gt=0.0)
    iterations: int = Field(default=200, ge=1)
    shrink_factors: list[int] = Field(default_factory=lambda: [4, 2, 1], min_length=1)
    smoothing_sigmas: list[float] = Field(default_factory=lambda: [2.0, 1.0, 0.0], min_length=1)
    max_rotation_deg: float = Field(default=30.0, gt=0.0)
    max_translation_mm: float = Field(default=50.0, gt=0.0)
    max_metric: float | None = -0.05
    num_threads: int = Field(default=1, ge=1)  # 1: bit-identical results on every machine

    @model_validator(mode="after")
    def _levels_match(self) -> RegistrationConfig:
        if len(self.shrink_factors) != len(self.smoothing_sigmas):
            raise ValueError(f"shrink_factors {self.shrink_factors} and smoothing_sigmas "
                             f"{self.smoothing_sigmas} need one entry per level each")
        return self


class PrepareConfig(StrictModel):
    """Settings of ``duetseg prepare``; their fingerprint decides whether a cache is reused."""

    modalities: list[str] = Field(default_factory=lambda: ["t1ce", "t2"], min_length=2)
    layout: LayoutName = "auto"
    target_spacing: tuple[float, float, float] | None = None
    crop_margin: int = Field(default=0, ge=0)
    normalization: dict[str, NormalizationConfig] = Field(default_factory=dict)
    default_normalization: NormalizationConfig = Field(default_factory=NormalizationConfig)
    # "whole_tumour": any label > 0 becomes 1 (BraTS). "identity": values must already be
    # 0..num_classes-1. A dict maps original values to classes; other values are errors.
    label_mapping: Literal["whole_tumour", "identity"] | dict[int, int] = "identity"
    num_classes: int = Field(default=2, ge=2)
    registration: RegistrationConfig = Field(default_factory=RegistrationConfig)

    @model_validator(mode="after")
    def _reference_is_a_modality(self) -> PrepareConfig:
        ref = self.registration.reference
        if ref is not None and ref not in self.modalities:
            raise ValueError(f"registration reference {ref!r} is not one of the modalities "
                             f"{self.modalities}")
        return self

    def normalization_for(self, modality: str) -> NormalizationConfig:
        """Return the normalisation of ``modality`` (its own entry or the default)."""
        return self.normalization.get(modality, self.default_normalization)


class SplitConfig(StrictModel):
    """How cases are divided into train / val / test and the labelled subset of train.

    Fractions (< 1) or counts (>= 1) for ``val`` and ``test``; ``labeled`` as ``"5%"`` or a
    count. Case-list files, when given, take precedence over the fractions.

    Cross-validation: ``folds: K`` (>= 2) shuffles the labelled cases with ``seed`` into K
    folds of near-equal size; the test split is fold ``fold`` (``test`` is then ignored), so
    the K runs of ``fold`` 0..K-1 test every labelled case exactly once. ``val`` and the
    labelled subset (``labeled``, seeded; or ``labeled_list``) are drawn from the other folds.
    """

    val: float = 0.1
    test: float = 0.2
    labeled: str | int = "10%"
    seed: int = 0
    folds: int | None = Field(default=None, ge=2)
    fold: int = Field(default=0, ge=0)
    train_list: Path | None = None
    val_list: Path | None = None
    test_list: Path | None = None
    labeled_list: Path | None = None

    @model_validator(mode="after")
    def _fold_in_range(self) -> SplitConfig:
        if self.folds is not None and self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} is not one of the {self.folds} folds "
                             f"(0..{self.folds - 1})")
        lists = (self.train_list, self.val_list, self.test_list)
        if self.folds is not None and any(p is not None for p in lists):
            raise ValueError("splits.folds and the train/val/test case-list files exclude "
                             "each other (labeled_list may pick a fold's labelled cases)")
        return self


class ModelConfig(StrictModel):
    """DuetNet (or a single-network backbone) settings.

    The field names are DuetNet's keyword arguments; :mod:`duetseg.models.factory` turns
    them into networks. The backbone is always a VNet: configs of older runs hold
    ``backbone: vnet``, which is accepted and dropped (any other backbone is refused).
    """

    base_width: int = Field(default=16, ge=1)
    fusion: Literal["none", "gate", "gate_residual", "add"] = "gate_residual"
    mae: bool = True
    mae_softmax: Literal["kernels", "modalities"] = "kernels"
    mae_on_skips: bool = False
    mae_reduction: int = Field(default=4, ge=1)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    norm: Literal["batch", "instance"] = "batch"
    # What each DuetNet branch reads: "own" = its own modality only (the paper); "all" =
    # every modality, so branch m differs from the others only by its weights and its role.
    branch_input: Literal["own", "all"] = "own"

    @model_validator(mode="before")
    @classmethod
    def _drop_legacy_backbone(cls, data: Any) -> Any:
        """Accept and drop ``backbone: vnet`` (old run configs); refuse other backbones."""
        if isinstance(data, dict) and "backbone" in data:
            data = dict(data)
            backbone = data.pop("backbone")
            if backbone != "vnet":
                raise ValueError(f"model.backbone {backbone!r} is not supported: the backbone "
                                 f"is always a VNet (the key is obsolete; remove it)")
        return data


class MethodConfig(StrictModel):
    """Training objective. ``options`` are validated by the method itself."""

    name: str = "ours"
    consistency_weight: float | None = None  # None: the method's default (ours: alpha = 1)
    # Fraction of training over which the unsupervised weight ramps up; 0 disables the ramp,
    # None takes the method's default (0.5 = SSL4MIS's 200 x 150 of 60k iterations).
    rampup_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _move_legacy_mcml(cls, data: Any) -> Any:
        """Read the obsolete ``method.mcml`` (configs before it became an option of ``ours``).

        ``mcml: false`` becomes ``options.mcml: false`` (``ours``' option); ``mcml: true``
        was the default and is dropped. An explicit ``options.mcml`` wins.
        """
        if isinstance(data, dict) and "mcml" in data:
            data = dict(data)
            if data.pop("mcml") in (False, "false", "False", 0):
                options = dict(data.get("options") or {})
                options.setdefault("mcml", False)
                data["options"] = options
        return data


class TrainConfig(StrictModel):
    """Optimisation and sampling."""

    max_iterations: int = Field(default=60000, ge=1)
    batch_size: int = Field(default=4, ge=1)
    labeled_bs: int = Field(default=2, ge=1)
    crop_size: Triple = (96, 96, 96)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    val_every: int = Field(default=200, ge=1)
    checkpoint_every: int = Field(default=200, ge=1)
    log_every: int = Field(default=10, ge=1)
    seed: int = 1337
    # "auto": half the CPU cores (at most 4) shared by the processes of a DDP run, at least 1.
    num_workers: int | Literal["auto"] = "auto"
    device: str = "auto"
    flip: bool = True
    rot90: bool = True
    # Probability that a labelled crop is centred on foreground (nnU-Net-style oversampling;
    # 0 = plain random crops as in the paper's protocol).
    foreground_prob: float = Field(default=0.0, ge=0.0, le=1.0)
    # Modality dropout: probability that a crop (labelled or unlabelled) has one modality,
    # chosen uniformly, replaced by zeros (never all of them; nothing is dropped with one
    # modality). DuetNet methods (ours, supervised) then give that crop no supervised and no
    # consistency loss on the absent modality's branch; other methods just see the zeroed
    # channel. A run trained with it > 0 can predict cases lacking a modality (predict).
    # 0 = off (batches bit for bit as without the option).
    modality_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    deterministic: bool = True
    amp: Literal["auto", "none", "bf16"] = "auto"  # auto: bf16 on CUDA, float32 on CPU
    # channels_last_3d weights and inputs; auto: on for CUDA and CPU (faster; BENCHMARKS.md)
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False  # torch.compile the training step


class InferenceConfig(StrictModel):
    """Sliding-window inference."""

    roi_size: Triple | None = None  # None: the training crop size
    # 0: the fewest windows that cover the volume (MONAI then shifts the last window of an
    # axis back, so windows still overlap where the size is not a multiple of the window);
    # 1.74x faster than the research-code loop at stride 2/3 and as accurate as 0.5 on real
    # runs (BENCHMARKS.md "Default inference path"). The paper's protocol: preset `paper`.
    overlap: float = Field(default=0.0, ge=0.0, lt=1.0)
    blend: Literal["gaussian", "constant"] = "gaussian"
    sw_batch_size: int = Field(default=2, ge=1)
    tta_flip: bool = False
    # "whole": one pass over the cropped volume padded to a multiple of 16 (no overlapping
    # windows; falls back to sliding windows when CUDA runs out of memory). "auto": whole
    # when the padded volume has at most whole_max_voxels voxels, else sliding windows.
    # Not the default: a network trained on crops can read the crop border as a position
    # cue, and one pass lost accuracy on the synthetic test data (BENCHMARKS.md).
    mode: Literal["auto", "sliding", "whole"] = "sliding"
    whole_max_voxels: int = Field(default=8_000_000, ge=1)
    amp: Literal["auto", "none", "bf16"] = "auto"  # auto: bf16 on CUDA, float32 on CPU
    # keep only the largest connected component of each foreground class (in the
    # original geometry, after argmax); used by evaluate and predict
    largest_component: bool = False


class Config(StrictModel):
    """The full configuration of a training run (saved as ``config.yaml`` in the run dir).

    ``name`` labels the configuration in reports (e.g. ``ours_w0`` for ``ours`` with the
    unsupervised weight at 0); None reports the run under its method's name.
    """

    name: str | None = None
    cache: Path | None = None
    splits: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)

    def to_yaml(self) -> str:
        """Serialise to YAML (paths and tuples as plain types)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def list_presets() -> list[str]:
    """Names of the built-in presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(source: str | Path, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a preset or file; an ``extends: <preset or file>`` key inherits from another."""
    path = Path(source)
    if not path.exists():
        candidate = PRESET_DIR / f"{source}.yaml"
        if candidate.exists():
            path = candidate
        else:
            raise ConfigError(
                f"config {source!r} is neither a file nor a preset (presets: {list_presets()})"
            )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    parent = data.pop("extends", None)
    if parent is not None:
        if str(parent) in _seen:
            raise ConfigError(f"{path}: circular `extends: {parent}`")
        data = _deep_merge(_read_yaml(parent, (*_seen, str(parent))), data)
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(source: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a preset name or YAML file, apply overrides and validate.

    Args:
        source: preset name (see ``list_presets``) or path to a YAML file; None = defaults.
        overrides: dotted ``key=value`` strings.

    Returns:
        The validated config.

    Raises:
        ConfigError: unknown file, bad YAML, unknown keys or invalid values.
    """
    data = _read_yaml(source) if source is not None else {}
    data = apply_overrides(data, overrides or [])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config {source or '(defaults)'}:\n{exc}") from exc
