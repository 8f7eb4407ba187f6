"""The options of ``ours`` (``method.options``), checked when a config is loaded."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from duetseg.config import StrictModel

__all__ = ["OursOptions"]


class OursOptions(StrictModel):
    """``method.options`` of :class:`~duetseg.methods.ours.Ours` (see its module docstring)."""

    # cross_pseudo by the cross-validated real-data numbers (BENCHMARKS.md); the paper's
    # soft MSE ("mse") collapsed to background there. Preset `paper` pins "mse".
    consistency: Literal["mse", "confident_teacher", "hard_pseudo", "cross_pseudo",
                         "ensemble_pseudo", "confident_pseudo",
                         "foreground_pseudo"] = "cross_pseudo"
    pseudo_threshold: float = Field(default=0.8, ge=0.0, lt=1.0)
    # foreground_pseudo: weight of another branch's background on the learner's own
    # foreground (0: never erased; 1: plain cross_pseudo)
    erase_weight: float = Field(default=0.0, ge=0.0, le=1.0)
    # pseudo-labels from logits plus a per-class bias steered by the labelled cases'
    # class volumes (:mod:`duetseg.methods.prior_guard`): "match" keeps the pseudo-label
    # volumes at them, "cap" only brakes volumes above them; hard pseudo-labels only
    # "soft": no labelled prior; each crop's pseudo-labels keep the source branch's own
    # expected class volume (sum of its softmax) instead of the argmax's; the default by
    # the cross-validated real-data numbers (2 and 4 labelled, BENCHMARKS.md); unset, it
    # means "off" for the soft consistencies and copy_paste (no hard labels to shift)
    # "anchor": "soft", plus a class bias that from the end of `anchor_window` (fractions
    # of training) holds the pseudo-label volume at its mean over that window, "anchor_cap"
    # only below it (:mod:`duetseg.methods.volume_anchor`)
    pseudo_prior: Literal["off", "cap", "match", "soft", "anchor", "anchor_cap"] = "soft"
    anchor_window: tuple[float, float] = (0.1, 0.2)
    prior_rate: float = Field(default=0.02, gt=0.0, le=1.0)
    prior_max_shift: float = Field(default=5.0, gt=0.0)
    # False: no unsupervised term and no unlabelled crops (the ablation rows without MCML)
    mcml: bool = True
    # False: the unlabelled crops go through detached MMF gates, so each branch's
    # consistency loss moves only that branch (forward values unchanged)
    cross_branch_grad: bool = True
    # True: unlabelled crop i's cuboid is pasted into crop i + 1 before the forward
    # pass, and the consistency targets are the branches' predictions on the unmixed
    # crops (one extra forward pass without gradient) mixed the same way (CutMix, as in
    # cross pseudo supervision's semi-supervised recipe); off: on real BraTS it
    # over-segmented and scored below the default (BENCHMARKS.md)
    cutmix: bool = False
    # cuboid side / crop side per axis (0.8: about half the crop's volume)
    cutmix_ratio: float = Field(default=0.8, gt=0.0, le=1.0)
    # True: the unlabelled crops' intensities are perturbed per crop and modality
    # (random gamma, brightness, noise) before the forward pass, and the consistency
    # targets are the branches' predictions on the clean crops (one extra forward pass
    # without gradient); with cutmix, the mixed crops are perturbed
    intensity_view: bool = False
    # True: each labelled crop and an unlabelled one exchange a cuboid both ways and
    # the branches learn the ground truth on the labelled parts and the cross
    # pseudo-labels (from the clean crops) on the others (bidirectional copy-paste,
    # :mod:`duetseg.methods.copy_paste`); needs consistency cross_pseudo, no cutmix
    copy_paste: bool = False
    # cuboid side / crop side per axis (BCP's 2/3)
    copy_paste_ratio: float = Field(default=2.0 / 3.0, gt=0.0, le=1.0)
    # True (with train.modality_dropout): in an unlabelled crop that lost an input, the
    # present branches learn the pseudo-label of the same crop with every input (one extra
    # forward pass without gradient, :mod:`duetseg.methods.missing_distill`); off, such a
    # crop with one branch left gets no unsupervised term at all
    missing_distill: bool = False

    @field_validator("pseudo_prior", mode="before")
    @classmethod
    def _yaml_off(cls, value):
        # YAML 1.1 reads an unquoted `off` as False (`pseudo_prior: off`, `...=off`)
        return "off" if value is False else value

    @field_validator("anchor_window")
    @classmethod
    def _window(cls, value):
        if not 0.0 <= value[0] < value[1] <= 1.0:
            raise ValueError(f"anchor_window needs 0 <= start < stop <= 1, got {value}")
        return value

    @model_validator(mode="after")
    def _copy_paste_alone(self):
        if self.copy_paste and (self.consistency != "cross_pseudo" or self.cutmix
                                or not self.cross_branch_grad):
            raise ValueError("copy_paste needs consistency: cross_pseudo, cutmix: false "
                             "and cross_branch_grad: true")
        return self

    @model_validator(mode="after")
    def _distill_on_unmixed_crops(self):
        if self.missing_distill and (self.cutmix or self.copy_paste
                                     or self.pseudo_prior not in ("soft", "off")):
            raise ValueError("missing_distill needs cutmix: false, copy_paste: false and "
                             "pseudo_prior soft or off (its targets are the unmixed crops' "
                             "predictions)")
        return self

    @model_validator(mode="after")
    def _prior_needs_hard_labels(self):
        soft_target = self.consistency in ("mse", "confident_teacher") or self.copy_paste
        if soft_target and "pseudo_prior" not in self.model_fields_set:
            # the default applies to hard pseudo-labels only; set without re-validating
            object.__setattr__(self, "pseudo_prior", "off")
        if self.pseudo_prior != "off" and soft_target:
            raise ValueError("pseudo_prior needs a hard pseudo-label consistency "
                             "(not mse or confident_teacher) and copy_paste: false")
        return self
