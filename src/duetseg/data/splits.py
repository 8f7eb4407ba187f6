"""Train / val / test splits and the labelled subset of train.

Two ways to split:

* seeded fractions or counts (``SplitConfig.val`` / ``test``, relative to the cases that have
  a label): val and test are drawn from the labelled cases only, the rest is train;
* K-fold cross-validation (``SplitConfig.folds``): the test split is one of K seeded folds
  of the labelled cases, see :func:`cv_folds`;
* case-list files (the SSL4MIS BraTS 2019 lists): ``train_list`` / ``val_list`` /
  ``test_list``, one case ID per line. The labelled subset is then the first N lines of the
  train list (SSL4MIS convention) unless ``labeled_list`` names it.

Cases without a label always go to train as unlabelled, in both modes.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from duetseg.atomic import save_json
from duetseg.config import SplitConfig
from duetseg.errors import ConfigError

__all__ = ["parse_labeled", "cv_folds", "make_splits", "save_splits", "load_splits",
           "read_case_list"]

_KEYS = ("train", "val", "test", "labeled", "unlabeled")
log = logging.getLogger(__name__)


def parse_labeled(spec: str | int, n_train: int) -> int:
    """Number of labelled training cases from ``"5%"``, ``"12"`` or ``12``.

    Args:
        spec: a percentage of the training cases (``"5%"`` -> ``max(1, round(0.05 * n))``)
            or a count.
        n_train: number of training cases.

    Returns:
        The number of labelled cases.

    Raises:
        ConfigError: unparsable, not positive, or more than ``n_train``.
    """
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if pct <= 0:
                raise ConfigError(f"labeled {spec!r}: the percentage must be positive")
            n = max(1, round(pct / 100.0 * n_train))
        else:
            n = int(text)
    except ValueError as exc:
        raise ConfigError(f"labeled {spec!r}: expected a percentage like '5%' or a count "
                          "like 12") from exc
    if n <= 0:
        raise ConfigError(f"labeled {spec!r}: the number of labelled cases must be positive")
    if n > n_train:
        raise ConfigError(f"labeled {spec!r}: {n} labelled cases requested but the training "
                          f"set has only {n_train}")
    return n


def _count(value: float, n: int, name: str) -> int:
    """A fraction (< 1) of ``n`` or a count (>= 1)."""
    if value < 0:
        raise ConfigError(f"split {name}={value}: must not be negative")
    if value < 1:
        return int(round(value * n))
    if float(value) != int(value):
        raise ConfigError(f"split {name}={value}: a count (>= 1) must be a whole number")
    return int(value)


def read_case_list(path: Path) -> list[str]:
    """Case IDs from a text file, one per line; blank lines are ignored.

    Raises:
        ConfigError: the file does not exist or holds a duplicate ID.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"case list {str(path)!r} does not exist")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    dupes = sorted(c for c, k in Counter(ids).items() if k > 1)
    if dupes:
        raise ConfigError(f"case list {str(path)!r}: duplicate case IDs {dupes}")
    return ids


def _checked_list(path: Path, known: set[str]) -> list[str]:
    ids = read_case_list(path)
    unknown = [c for c in ids if c not in known]
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise ConfigError(f"case list {str(path)!r}: {len(unknown)} case ID(s) not in the "
                          f"prepared data: {shown}")
    return ids


def _require_labelled(ids: list[str], labelled: set[str], what: str, path: Any) -> None:
    missing = [c for c in ids if c not in labelled]
    if missing:
        where = f" (from {str(path)!r})" if path is not None else ""
        raise ConfigError(f"{what}{where} must have labels; case(s) without a label: "
                          f"{', '.join(missing[:10])}")


def _finish(train: list[str], val: list[str], test: list[str],
            labeled: list[str]) -> dict[str, list[str]]:
    groups = {"train": set(train), "val": set(val), "test": set(test)}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = groups[a] & groups[b]
        if both:
            raise ConfigError(f"splits {a} and {b} overlap: {', '.join(sorted(both)[:10])}")
    out = {"train": sorted(train), "val": sorted(val), "test": sorted(test),
           "labeled": sorted(labeled),
           "unlabeled": sorted(set(train) - set(labeled))}
    if not out["labeled"]:
        raise ConfigError("the training set has no labelled case")
    return out


def cv_folds(labelled: list[str], folds: int, seed: int) -> list[list[str]]:
    """The labelled cases shuffled with ``seed`` and cut into ``folds`` near-equal folds.

    The partition depends only on the case set, ``folds`` and ``seed`` (never on which fold
    a run tests), so the runs of folds 0..K-1 test every case exactly once.

    Raises:
        ConfigError: fewer cases than folds.
    """
    if len(labelled) < folds:
        raise ConfigError(f"{folds}-fold cross-validation needs at least {folds} labelled "
                          f"cases, found {len(labelled)}")
    order = np.random.default_rng([seed, folds]).permutation(len(labelled))
    shuffled = [sorted(labelled)[i] for i in order]
    return [sorted(part) for part in np.array_split(np.asarray(shuffled, dtype=object), folds)]


def _fold_split(labelled: list[str], unlabelled_only: list[str],
                cfg: SplitConfig) -> tuple[list[str], list[str], list[str], list[str]]:
    """(val, test, train, labeled) of fold ``cfg.fold`` of ``cfg.folds``."""
    parts = cv_folds(labelled, int(cfg.folds), cfg.seed)
    test = list(parts[cfg.fold])
    rest = sorted(c for i, part in enumerate(parts) if i != cfg.fold for c in part)
    rest = [rest[i] for i in np.random.default_rng([cfg.seed, cfg.folds, cfg.fold + 1])
            .permutation(len(rest))]
    n_val = _count(cfg.val, len(labelled), "val")
    if n_val >= len(rest):
        raise ConfigError(f"val ({n_val}) leaves no labelled training case in fold "
                          f"{cfg.fold} ({len(rest)} cases outside the test fold)")
    val, rest = rest[:n_val], rest[n_val:]
    n_lab = parse_labeled(cfg.labeled, len(rest) + len(unlabelled_only))
    if n_lab > len(rest):
        raise ConfigError(f"labeled {cfg.labeled!r}: {n_lab} labelled cases requested but "
                          f"only {len(rest)} training cases of fold {cfg.fold} have a label")
    return val, test, rest + unlabelled_only, rest[:n_lab]


def make_splits(cases: list[str], labelled_available: list[str],
                cfg: SplitConfig) -> dict[str, list[str]]:
    """Divide the cases into train / val / test and the labelled subset of train.

    Args:
        cases: all prepared case IDs.
        labelled_available: the cases that have a label.
        cfg: split settings (fractions/counts, labelled spec, seed, optional list files).

    Returns:
        ``{"train", "val", "test", "labeled", "unlabeled"}``, each a sorted list;
        ``labeled`` and ``unlabeled`` partition ``train``.

    Raises:
        ConfigError: impossible sizes, unknown IDs in a list file, overlapping lists,
            val/test/labelled cases without a label.
    """
    all_cases = list(dict.fromkeys(cases))
    known = set(all_cases)
    labelled = set(labelled_available) & known
    unlabelled_only = [c for c in all_cases if c not in labelled]
    labeled_fixed = (_checked_list(cfg.labeled_list, known)
                     if cfg.labeled_list is not None else None)
    if labeled_fixed is not None:
        _require_labelled(labeled_fixed, labelled, "labelled cases", cfg.labeled_list)

    if any(p is not None for p in (cfg.train_list, cfg.val_list, cfg.test_list)):
        val = _checked_list(cfg.val_list, known) if cfg.val_list is not None else []
        test = _checked_list(cfg.test_list, known) if cfg.test_list is not None else []
        _require_labelled(val, labelled, "validation cases", cfg.val_list)
        _require_labelled(test, labelled, "test cases", cfg.test_list)
        if cfg.train_list is not None:
            train = _checked_list(cfg.train_list, known)
            extra = [c for c in unlabelled_only if c not in set(train) | set(val) | set(test)]
            left_out = sorted(labelled - set(train) - set(val) - set(test))
            if left_out:
                log.warning("%d labelled case(s) are in none of the case lists and are not "
                            "used: %s", len(left_out), ", ".join(left_out[:10]))
        else:
            train = [c for c in all_cases if c not in set(val) | set(test)]
            extra = []
        if labeled_fixed is None:
            n_lab = parse_labeled(cfg.labeled, len(train))
            labeled = train[:n_lab]  # the first N lines of the train list (SSL4MIS)
            _require_labelled(labeled, labelled, f"the first {n_lab} training cases",
                              cfg.train_list)
        else:
            labeled = labeled_fixed
        # Unlabelled-only cases never leave train.
        train = train + extra
    elif cfg.folds is not None:
        val, test, train, labeled = _fold_split(sorted(labelled), unlabelled_only, cfg)
        if labeled_fixed is not None:  # e.g. the fold's labelled cases + suggested ones
            held_out = sorted(set(labeled_fixed) & (set(val) | set(test)))
            if held_out:
                raise ConfigError(f"labeled_list names case(s) of fold {cfg.fold}'s "
                                  f"validation/test part: {', '.join(held_out[:10])}")
            labeled = labeled_fixed
    else:
        rng = np.random.default_rng(cfg.seed)
        fixed = set(labeled_fixed or [])
        pool = sorted(labelled - fixed)
        pool = [pool[i] for i in rng.permutation(len(pool))]
        n_val = _count(cfg.val, len(labelled), "val")
        n_test = _count(cfg.test, len(labelled), "test")
        if n_val + n_test >= len(pool) + (1 if fixed else 0):
            raise ConfigError(f"val ({n_val}) + test ({n_test}) leave no labelled training "
                              f"case out of {len(labelled)} labelled cases")
        val, test = pool[:n_val], pool[n_val:n_val + n_test]
        rest = pool[n_val + n_test:]
        train = sorted(fixed) + rest + unlabelled_only
        if labeled_fixed is None:
            n_lab = parse_labeled(cfg.labeled, len(train))
            if n_lab > len(rest):
                raise ConfigError(f"labeled {cfg.labeled!r}: {n_lab} labelled cases requested "
                                  f"but only {len(rest)} training cases have a label")
            labeled = rest[:n_lab]  # the seeded shuffle picks the labelled subset
        else:
            labeled = labeled_fixed
    missing = [c for c in labeled if c not in set(train)]
    if missing:
        raise ConfigError(f"labelled cases not in the training set: {', '.join(missing[:10])}")
    return _finish(train, val, test, labeled)


def save_splits(splits: dict[str, list[str]], path: Path) -> None:
    """Write splits as JSON atomically."""
    save_json({k: list(splits[k]) for k in _KEYS}, path)


def load_splits(path: Path) -> dict[str, list[str]]:
    """Read splits written by :func:`save_splits`.

    Raises:
        ConfigError: missing file or keys.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"splits file {str(path)!r} does not exist")
    data = json.loads(path.read_text())
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise ConfigError(f"splits file {str(path)!r} lacks {missing}")
    return {k: list(data[k]) for k in _KEYS}
