"""``runs_phrase``: how Table 1 says which runs a row pools."""

from __future__ import annotations

from types import SimpleNamespace

from duetseg.reporting.tables import runs_phrase


def _run(seed: int, split: str, fold: int | None) -> SimpleNamespace:
    return SimpleNamespace(seed=seed, split_key=split, fold=fold)


def test_seeds_folds_and_repeated_cross_validation():
    assert runs_phrase([_run(0, "a", None), _run(1, "a", None)]) == "2 seeds"
    assert runs_phrase([_run(0, f"s{k}", k) for k in range(3)]) == "3 folds"
    assert runs_phrase([_run(0, "a", None), _run(0, "b", None)]) == "2 splits"
    # repeated cross-validation: each seed draws its own partition, so 6 distinct splits
    repeated = [_run(s, f"s{s}f{k}", k) for s in (0, 1) for k in range(3)]
    assert runs_phrase(repeated) == "6 runs (2 seeds × 3 folds)"
    # a seed with a fold missing: distinct splits, not a product
    assert runs_phrase(repeated[:-1]) == "5 runs (2 seeds, 5 splits)"
    # seeds over fixed splits (not folds)
    grid = [_run(s, split, None) for s in (0, 1) for split in ("a", "b")]
    assert runs_phrase(grid) == "4 runs (2 seeds × 2 splits)"
