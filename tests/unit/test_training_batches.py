"""Batching: every source training row once per epoch, length buckets, seeded determinism."""

from __future__ import annotations

import numpy as np
import torch

from agcc.training.batches import _by_length, epoch_batches, make_batch
from tests.unit.training_toy import toy_corpus


def _epoch(seed: int, batch_size: int = 4, with_target: bool = True) -> list:
    """One epoch's steps of the toy source (and target) corpus."""
    src, tgt = toy_corpus("src", 1), toy_corpus("tgt", 2)
    rng, rng_t = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    return epoch_batches(src, tgt if with_target else None, batch_size, rng, rng_t)


def test_every_source_training_row_once_per_epoch() -> None:
    src = toy_corpus("src", 1)
    steps = _epoch(3)
    rows = np.concatenate([s for s, _ in steps])
    assert sorted(rows.tolist()) == src.rows("train").tolist()
    assert all(len(s) == 4 for s, _ in steps)  # 24 training rows: 6 full batches


def test_a_last_batch_of_one_is_dropped_but_of_two_kept() -> None:
    src = toy_corpus("src", 1)  # 24 training rows
    rng = np.random.default_rng(0)
    steps = epoch_batches(src, None, 23, rng, rng)
    assert [len(s) for s, _ in steps] == [23]
    steps = epoch_batches(src, None, 11, rng, rng)
    assert sorted(len(s) for s, _ in steps) == [2, 11, 11]


def test_target_rows_are_training_rows_one_batch_per_step() -> None:
    tgt = toy_corpus("tgt", 2)
    for s, t in _epoch(5):
        assert len(t) == len(s) == 4
        assert set(t.tolist()) <= set(tgt.rows("train").tolist())


def test_batches_are_consecutive_runs_of_the_length_sorted_rows() -> None:
    src = toy_corpus("src", 1)
    steps = epoch_batches(src, None, 4, np.random.default_rng(9), np.random.default_rng(9))
    order = _by_length(src.rows("train"), src.length, np.random.default_rng(9))
    buckets = {tuple(order[i : i + 4]) for i in range(0, len(order), 4)}
    assert {tuple(s) for s, _ in steps} == buckets
    means = [float(src.length[list(b)].mean()) for b in buckets]
    assert max(means) > min(means)  # short and long utterances are batched apart


def test_by_length_sorts_by_randomised_length() -> None:
    rows, length = np.arange(6), np.array([10, 100, 20, 200, 30, 300])
    out = _by_length(rows, length, np.random.default_rng(0))
    assert sorted(out.tolist()) == rows.tolist()
    assert out[:3].tolist() == [0, 2, 4]  # factors in [0.8, 1.25) cannot reorder 10x gaps


def test_same_seed_same_epoch_other_seed_other_epoch() -> None:
    a, b, c = _epoch(1), _epoch(1), _epoch(2)
    same = all(
        np.array_equal(s1, s2) and np.array_equal(t1, t2)
        for (s1, t1), (s2, t2) in zip(a, b, strict=True)
    )
    assert same
    assert any(not np.array_equal(s1, s2) for (s1, _), (s2, _) in zip(a, c, strict=True))


def test_source_batches_do_not_depend_on_the_target() -> None:
    with_t = [s for s, _ in _epoch(4)]
    without = [s for s, _ in _epoch(4, with_target=False)]
    assert all(np.array_equal(x, y) for x, y in zip(with_t, without, strict=True))


def test_make_batch_pads_and_offsets_segments() -> None:
    src, tgt = toy_corpus("src", 1), toy_corpus("tgt", 2)
    rs, rt = np.array([0, 5]), np.array([3])
    b = make_batch([(src, rs, True), (tgt, rt, False)], torch.device("cpu"))
    assert b.x.shape == (3, int(max(src.length[rs].max(), tgt.length[rt].max())), 6)
    assert b.n_first == 2 and b.labels.tolist() == [*src.labels[rs].tolist(), -1]
    assert b.seg_row.tolist() == [0, 0, 1, 1, 2, 2]
    assert b.seg_lo[4:].tolist() == tgt.segments.lo[6:8].tolist()
    assert float(b.x[2, tgt.length[3] :].abs().sum()) == 0.0  # zero padding
