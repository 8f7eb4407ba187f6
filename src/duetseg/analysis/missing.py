"""Dice with a modality missing at prediction, per case, and paired differences.

Each test case of a trained run is predicted with all its modalities and with each one
zero-filled, the way ``duetseg predict`` treats a case lacking it
(:func:`duetseg.workflows.missing.present_outputs`: the absent branch's output is dropped
and the ensemble is the mean of the present branches). Dice is that of the primary output
in the run's cache geometry. The per-case values are kept as a record
(:attr:`duetseg.run.layout.RunDir.missing_inputs_file`), so tables can be pooled again
without the weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duetseg.atomic import save_json
from duetseg.reporting.bootstrap import BOOTSTRAP_SEED, N_RESAMPLES, bootstrap_mean_ci
from duetseg.run.layout import RunDir

__all__ = ["InputDice", "Pooled", "PairedDifference", "missing_input_dice",
           "recorded_missing_dice", "pool_missing", "paired_differences"]

InputDice = dict[str, dict[str, float]]  # inputs ("t1ce+t2", "t1ce", ...) -> case -> Dice %
Pooled = dict[str, InputDice]  # configuration -> inputs -> "s<seed>:<case>" -> Dice %


@dataclass(frozen=True)
class PairedDifference:
    """Mean per-case Dice difference ``name − reference`` on one input set.

    Attributes:
        name: the configuration.
        reference: the configuration subtracted.
        inputs: the modalities given, joined by ``+``.
        mean: mean difference (percentage points).
        low: lower bound of the 95 % percentile bootstrap interval.
        high: upper bound.
        n: paired cases.
    """

    name: str
    reference: str
    inputs: str
    mean: float
    low: float
    high: float
    n: int


def missing_input_dice(run_dir: Path, device: str = "cpu") -> InputDice:
    """Per-case Dice % of a trained run on its test cases, for each set of inputs.

    Args:
        run_dir: a run with weights (``checkpoints/last.pt``).
        device: where to predict.

    Returns:
        All modalities, then each one alone (for a multi-modal run) -> case -> Dice %.
    """
    import torch

    from duetseg.evaluation.metrics import dice
    from duetseg.output_spec import branch_modalities
    from duetseg.run.trained import load_trained_run, predict_probabilities
    from duetseg.workflows.missing import present_outputs

    run = load_trained_run(run_dir, "last", device)
    modalities = list(run.cache.modalities)
    subsets = [modalities] + ([[m] for m in modalities] if len(modalities) > 1 else [])
    branches = branch_modalities(run.method.outputs())
    out: InputDice = {}
    for case in json.loads(RunDir(run_dir).splits_file.read_text())["test"]:
        image = run.cache.load_image(case, mmap=False)
        label = run.cache.load_label(case, mmap=False) > 0
        for present in subsets:
            x = image.copy()
            for channel, modality in enumerate(modalities):
                if modality not in present:
                    x[channel] = 0.0
            with torch.no_grad():
                probs = present_outputs(predict_probabilities(run, x), modalities, present,
                                        branches)
            pred = probs[run.method.primary_output][1:].sum(0) > 0.5
            out.setdefault("+".join(present), {})[case] = float(dice(pred, label))
    return out


def recorded_missing_dice(run_dir: Path, record_run: Path | None = None) -> InputDice | None:
    """:func:`missing_input_dice` of a run, computed where its weights are, else recorded.

    Args:
        run_dir: the run directory.
        record_run: the run folder that keeps the record (e.g. its archived copy); the
            run directory itself by default. A computed result is written there when the
            folder exists.

    Returns:
        The per-case Dice, or ``None`` without weights and without a record.
    """
    record = RunDir(record_run if record_run is not None else run_dir).missing_inputs_file
    if RunDir(run_dir).last_checkpoint.is_file():
        values = missing_input_dice(run_dir)
        if record.parent.parent.is_dir():
            save_json(values, record)
        return values
    return json.loads(record.read_text()) if record.is_file() else None


def pool_missing(entries: Iterable[tuple[str, int, InputDice]]) -> Pooled:
    """Pool the per-case Dice of several runs by configuration.

    Args:
        entries: ``(configuration, seed, per-case Dice)`` of each run.

    Returns:
        configuration -> inputs -> ``s<seed>:<case>`` -> Dice %.
    """
    pooled: Pooled = {}
    for name, seed, per_inputs in entries:
        for inputs, values in per_inputs.items():
            pooled.setdefault(name, {}).setdefault(inputs, {}).update(
                {f"s{seed}:{case}": v for case, v in values.items()})
    return pooled


def paired_differences(pooled: Pooled, n_resamples: int = N_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> list[PairedDifference]:
    """Paired per-case differences between configurations on the same inputs.

    - each multi-modal configuration on one modality minus the configuration trained on
      that modality alone (one with a single input set);
    - each further multi-modal configuration minus the first one, on every input set.

    Args:
        pooled: see :func:`pool_missing` (its order decides "the first").
        n_resamples: bootstrap resamples of each interval.
        seed: bootstrap seed.

    Returns:
        One difference per pair with shared cases.
    """
    single = {next(iter(v)): name for name, v in pooled.items() if len(v) == 1}
    multi = [name for name, v in pooled.items() if len(v) > 1]
    pairs = [(name, alone, inputs) for name in multi for inputs, alone in single.items()
             if inputs in pooled[name]]
    pairs += [(name, multi[0], inputs) for name in multi[1:] for inputs in pooled[name]
              if inputs in pooled[multi[0]]]
    out = []
    for name, ref, inputs in pairs:
        a, b = pooled[name][inputs], pooled[ref][inputs]
        cases = sorted(set(a) & set(b))
        if not cases:
            continue
        diff = np.array([a[c] - b[c] for c in cases])
        low, high = bootstrap_mean_ci(diff, n_resamples=n_resamples, seed=seed)
        out.append(PairedDifference(name, ref, inputs, float(diff.mean()), float(low),
                                    float(high), len(cases)))
    return out
