"""The options of ``ours`` (``method.options``), checked when a config is loaded."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from duetseg.config import StrictModel

__all__ = ["OursOptions", "REMOVED_OPTIONS"]

# Options that were measured below the default on real data and removed, with the value
# that meant "off". A run config that still spells one at that value loads (the key is
# dropped); any other value is refused, since the objective it names no longer exists.
REMOVED_OPTIONS: dict[str, Any] = {
    "pseudo_threshold": 0.8, "erase_weight": 0.0, "anchor_window": (0.1, 0.2),
    "prior_rate": 0.02, "prior_max_shift": 5.0, "cross_branch_grad": True, "cutmix": False,
    "cutmix_ratio": 0.8, "intensity_view": False, "copy_paste": False,
    "copy_paste_ratio": 2.0 / 3.0, "teacher": "branches", "ema_decay": 0.99,
    "teachers": None,
}


class OursOptions(StrictModel):
    """``method.options`` of :class:`~duetseg.methods.ours.Ours` (see its module docstring).

    Attributes:
        consistency: ``cross_pseudo`` (the default: each branch learns the other branch's
            pseudo-labels with the supervised CE + Dice) or ``mse`` (the paper: each
            branch's softmax pulled to the other's; preset ``paper``).
        pseudo_prior: ``soft`` (the default: each crop's pseudo-labels keep the source
            branch's expected class volume, the sum of its softmax) or ``off`` (the plain
            argmax); unset with ``mse`` it means ``off``.
        mcml: False drops the unsupervised term and the unlabelled crops (the ablation).
        missing_distill: with ``train.modality_dropout``, an unlabelled crop that lost an
            input teaches its present branches the prediction on the same crop with every
            input (:mod:`duetseg.methods.missing_distill`).
    """

    removed: ClassVar[dict[str, Any]] = REMOVED_OPTIONS

    consistency: Literal["cross_pseudo", "mse"] = "cross_pseudo"
    pseudo_prior: Literal["soft", "off"] = "soft"
    mcml: bool = True
    missing_distill: bool = False

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, off in REMOVED_OPTIONS.items():
            if key not in out:
                continue
            value = out.pop(key)
            same = (tuple(value) == tuple(off) if isinstance(off, tuple)
                    else value == off)
            if not same:
                raise ValueError(f"option {key!r} was removed (it measured below the "
                                 f"default); only its former off value {off!r} is accepted")
        if out.get("consistency") in ("confident_teacher", "hard_pseudo", "ensemble_pseudo",
                                      "confident_pseudo", "foreground_pseudo"):
            raise ValueError(f"consistency {out['consistency']!r} was removed (it measured "
                             "below the default); use cross_pseudo or mse")
        if out.get("pseudo_prior") in ("cap", "match", "anchor", "anchor_cap"):
            raise ValueError(f"pseudo_prior {out['pseudo_prior']!r} was removed (it measured "
                             "below the default); use soft or off")
        return out

    @field_validator("pseudo_prior", mode="before")
    @classmethod
    def _yaml_off(cls, value):
        # YAML 1.1 reads an unquoted `off` as False (`pseudo_prior: off`, `...=off`)
        return "off" if value is False else value

    @model_validator(mode="after")
    def _prior_needs_hard_labels(self):
        if self.consistency == "mse" and "pseudo_prior" not in self.model_fields_set:
            # the default applies to hard pseudo-labels only; set without re-validating
            object.__setattr__(self, "pseudo_prior", "off")
        if self.pseudo_prior != "off" and self.consistency == "mse":
            raise ValueError("pseudo_prior soft needs consistency cross_pseudo (mse has no "
                             "hard pseudo-labels to shift)")
        return self
