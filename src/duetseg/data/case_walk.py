"""Which case fills each slot of a training batch: seeded walks over case permutations.

Labelled slot ``j`` of iteration ``t`` takes position ``g = t * labeled_bs + j`` in an
endless walk over successive permutations of the labelled cases (permutation ``p`` is drawn
from ``default_rng([seed, 0, p])``, ``p = g // n_labelled``), so each pass covers every
labelled case once. Unlabelled slots walk endless permutations of the unlabelled cases the
same way (``default_rng([seed, 2, p])``); with no unlabelled cases they walk the labelled
ones. With ``world_size`` W > 1 the walk serves the global batch of ``W x labeled_bs``
labelled and ``W x (batch_size - labeled_bs)`` unlabelled slots, and rank ``r`` takes the
``r``-th block of each part.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CaseWalk"]

_LABELLED_STREAM = 0
_UNLABELLED_STREAM = 2
_MAX_CACHED_PERMUTATIONS = 64


class CaseWalk:
    """The case and global slot index of each of one rank's batch slots, per iteration.

    Args:
        labeled: labelled cases.
        unlabeled: unlabelled cases (may be empty).
        batch_size: slots per batch and rank.
        labeled_bs: labelled slots per batch and rank (the first ones).
        seed: the walk's seed.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(self, labeled: list[str], unlabeled: list[str], batch_size: int,
                 labeled_bs: int, seed: int, rank: int = 0, world_size: int = 1):
        self.labeled, self.unlabeled = list(labeled), list(unlabeled)
        self.n_lab, self.n_unl = int(labeled_bs), int(batch_size) - int(labeled_bs)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def _permutation(self, stream: int, p: int, n: int) -> np.ndarray:
        key = (stream, p)
        perm = self._perms.get(key)
        if perm is None:
            if len(self._perms) > _MAX_CACHED_PERMUTATIONS:
                self._perms.clear()
            perm = np.random.default_rng([self.seed, stream, p]).permutation(n)
            self._perms[key] = perm
        return perm

    def _case(self, cases: list[str], stream: int, position: int) -> str:
        n = len(cases)
        return cases[int(self._permutation(stream, position // n, n)[position % n])]

    def slots(self, iteration: int) -> list[tuple[str, int]]:
        """``(case, global slot)`` of each of this rank's slots, labelled first.

        Args:
            iteration: the training iteration.

        Returns:
            One pair per slot; the global slot index seeds the slot's random streams.
        """
        n_lab, n_unl, w, r = self.n_lab, self.n_unl, self.world_size, self.rank
        out = [(self._case(self.labeled, _LABELLED_STREAM, iteration * w * n_lab + j), j)
               for j in range(r * n_lab, (r + 1) * n_lab)]
        pool = self.unlabeled or self.labeled
        out += [(self._case(pool, _UNLABELLED_STREAM, iteration * w * n_unl + j), w * n_lab + j)
                for j in range(r * n_unl, (r + 1) * n_unl)]
        return out
