"""Settings of a training run: splits, model, method, training, inference (``config.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, model_validator

from duetseg.config.base import StrictModel, Triple

__all__ = ["SplitConfig", "ModelConfig", "MethodConfig", "TrainConfig", "InferenceConfig",
           "Config"]


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

    The field names are DuetNet's keyword arguments; :mod:`duetseg.methods.networks` turns
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
    # Number of DuetNet branches; None = one per modality. Another count needs
    # branch_input "all" (checked when the method is built, where the modalities are known):
    # e.g. 2 on a single-modality cache gives two branches that both read it.
    branches: int | None = Field(default=None, ge=2)

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
    # Intensity augmentation: probability that a modality of a crop (labelled or
    # unlabelled) gets random brightness, gamma and noise on its non-zero voxels
    # (duetseg.data.augment.random_intensity_augment). 0 = off (batches bit for bit as
    # without the option).
    intensity_augment: float = Field(default=0.0, ge=0.0, le=1.0)
    # Contrast inversion: modality -> probability that a crop's modality (labelled or
    # unlabelled) is mirrored about its case's mean of non-zero voxels
    # (duetseg.data.augment.random_contrast_inversion), for a modality on which the target
    # is bright in some cases and dark in others. Empty = off (batches unchanged).
    contrast_inversion: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict)
    # Spatial augmentation: probability that a crop (labelled or unlabelled) is rotated (up
    # to 30 degrees about each axis) and zoomed (0.7-1.4) about its centre, nnU-Net's
    # ranges (duetseg.data.augment.random_rotate_scale). 0 = off (batches unchanged).
    spatial_augment: float = Field(default=0.0, ge=0.0, le=1.0)
    deterministic: bool = True
    amp: Literal["auto", "none", "bf16"] = "auto"  # auto: bf16 on CUDA, float32 on CPU
    # channels_last_3d weights and inputs; auto: on for CUDA and CPU (faster; BENCHMARKS.md,
    # "Speed on CPU" and "Speed on GPU")
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False  # torch.compile the training step


class InferenceConfig(StrictModel):
    """Sliding-window inference."""

    roi_size: Triple | None = None  # None: the training crop size
    # 0: the fewest windows that cover the volume (MONAI then shifts the last window of an
    # axis back, so windows still overlap where the size is not a multiple of the window);
    # faster than the research-code loop at stride 2/3 and as accurate as 0.5 on real runs
    # (BENCHMARKS.md, "Default inference path vs the research-code loop (cpu)"). The paper's
    # protocol: preset `paper`.
    overlap: float = Field(default=0.0, ge=0.0, lt=1.0)
    blend: Literal["gaussian", "constant"] = "gaussian"
    sw_batch_size: int = Field(default=2, ge=1)
    tta_flip: bool = False
    # "whole": one pass over the cropped volume padded to a multiple of 16 (no overlapping
    # windows; falls back to sliding windows when CUDA runs out of memory). "auto": whole
    # when the padded volume has at most whole_max_voxels voxels, else sliding windows.
    # Not the default: a network trained on crops can read the crop border as a position
    # cue, and one pass lost accuracy on the synthetic test data.
    mode: Literal["auto", "sliding", "whole"] = "sliding"
    # ``auto`` predicts a volume in one pass when its padded size is at most this many voxels
    # (about 200^3: a brain-cropped 1 mm BraTS case is 3.5 M); bigger volumes (whole-body CT)
    # go by windows. One pass is the fastest on CPU (2.9x the research-code window loop).
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
    # The cache's modalities the run reads, in this order; None = all of them. A model
    # trained on a selection predicts from those modalities' files alone.
    modalities: list[str] | None = Field(default=None, min_length=1)
    splits: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)

    def to_yaml(self) -> str:
        """Serialise to YAML (paths and tuples as plain types)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
