"""The seeded walk that picks each batch slot's case."""

from __future__ import annotations

from duetseg.data.case_walk import CaseWalk

LABELLED = ["a", "b", "c"]
UNLABELLED = ["u1", "u2", "u3", "u4", "u5"]


def test_every_pass_over_the_labelled_cases_covers_each_once():
    walk = CaseWalk(LABELLED, UNLABELLED, batch_size=4, labeled_bs=1, seed=3)
    order = [walk.slots(t)[0][0] for t in range(12)]
    for p in range(4):
        assert sorted(order[3 * p:3 * p + 3]) == LABELLED
    assert [s for _, s in walk.slots(5)] == [0, 1, 2, 3]
    assert {c for t in range(5) for c, _ in walk.slots(t)[1:]} == set(UNLABELLED)


def test_ranks_split_the_global_batch_of_one_process():
    single = CaseWalk(LABELLED, UNLABELLED, batch_size=6, labeled_bs=2, seed=1)
    ranks = [CaseWalk(LABELLED, UNLABELLED, batch_size=3, labeled_bs=1, seed=1, rank=r,
                      world_size=2) for r in (0, 1)]
    for t in range(4):
        whole = single.slots(t)
        parts = [w.slots(t) for w in ranks]
        assert [parts[0][0], parts[1][0]] == whole[:2]
        assert parts[0][1:] + parts[1][1:] == whole[2:]


def test_without_unlabelled_cases_every_slot_walks_the_labelled_ones():
    walk = CaseWalk(LABELLED, [], batch_size=4, labeled_bs=2, seed=0)
    assert {c for t in range(3) for c, _ in walk.slots(t)} <= set(LABELLED)
