"""Prediction of cases that lack some of a run's modalities (``train.modality_dropout``).

A run trained with modality dropout (``train.modality_dropout`` > 0) has seen crops with one
input zeroed, so ``duetseg predict`` accepts a case lacking some of its modalities (at least
one must be present): the absent channels are zero-filled after preprocessing
(:func:`~duetseg.data.preprocess.fill_missing_modalities`) and the prediction comes from what
saw an image. For methods with one output per modality branch (``branch_a``, ``branch_b``,
...: ``ours``, ``supervised``, ``mmcml``, ``cmc``) the outputs of the absent modalities'
branches are dropped and ``ensemble`` becomes the mean softmax of the present branches only
(:func:`present_outputs`); a branch reading every modality (``model.branch_input: all``) is
always kept; the disagreement then compares the present branches (the
normalised entropy when one is left). Single-network methods predict from the zero-filled
input as it is. A run trained without modality dropout refuses such a case
(:func:`check_missing_allowed`).
"""

from __future__ import annotations

import numpy as np

from duetseg.data.discovery import CaseSpec
from duetseg.errors import InputError

__all__ = ["check_missing_allowed", "modalities_used", "present_outputs"]


def check_missing_allowed(specs: list[CaseSpec], modalities: list[str],
                          modality_dropout: float) -> None:
    """Refuse cases lacking a modality unless the run was trained with modality dropout.

    Args:
        specs: discovered cases (``allow_missing=True``).
        modalities: the run's modalities.
        modality_dropout: the run's ``train.modality_dropout``.

    Raises:
        InputError: the first case with a missing modality when ``modality_dropout`` is 0;
            names the case, the missing modalities and files, and the option.
    """
    if modality_dropout > 0:
        return
    for spec in specs:
        if spec.missing:
            files = ", ".join(f"{m}: {path}" for m, path in spec.missing.items())
            raise InputError(
                f"missing modality {', '.join(repr(m) for m in spec.missing)} ({files}); this "
                f"run was trained without modality dropout (train.modality_dropout = 0), so "
                f"every case needs all of its modalities {list(modalities)}: add the missing "
                f"file, or predict with a run trained with train.modality_dropout > 0",
                case=spec.case, file=next(iter(spec.missing.values())),
            )


def modalities_used(present: list[str]) -> str:
    """The ``modalities_used`` entry of ``disagreement.csv``, e.g. ``"t1ce+t2"``."""
    return "+".join(present)


def present_outputs(probs: dict[str, np.ndarray], modalities: list[str],
                    present: list[str],
                    branches: dict[str, str | None]) -> dict[str, np.ndarray]:
    """The outputs of a case computed only from the branches whose modality is present.

    Each branch output belongs to the modality it reads (``branches``, from the method's
    ``outputs()``; None for a branch reading every modality, which is always kept). Outputs
    of absent modalities' branches are dropped, and when the method
    has branch outputs its ``ensemble`` is recomputed as the mean of the present branches'
    probabilities (the network's ensemble is the mean softmax of all branches). Other
    outputs (a single network's ``prediction``) are kept as they are.

    Args:
        probs: output name -> (C, ...) probabilities of every output.
        modalities: the run's modalities, in branch order.
        present: the modalities the case has.
        branches: branch output name -> the modality it reads (see
            :func:`duetseg.output_spec.branch_modalities`); empty for single-network methods.

    Returns:
        ``probs`` itself when every modality is present, else the filtered outputs.
    """
    if all(m in present for m in modalities):
        return probs
    owner = dict(branches)
    kept = {k: v for k, v in probs.items()
            if k not in owner or owner[k] is None or owner[k] in present}
    kept_branches = [v for k, v in kept.items() if k in owner]
    if kept_branches and "ensemble" in kept:
        kept["ensemble"] = (np.mean(np.stack(kept_branches), axis=0)
                            .astype(probs["ensemble"].dtype, copy=False))
    return kept
