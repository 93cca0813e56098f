"""The process-pool runner: the same results in-process and in a pool, initializer run once."""

from __future__ import annotations

import os

from agcc.parallel import pool_map

_OFFSET: int | None = None


def _init(offset: int) -> None:
    """Per-process state, as a model would be loaded."""
    global _OFFSET
    _OFFSET = offset


def _task(x: int) -> tuple[int, int]:
    """(x squared plus the initialised offset, process id)."""
    assert _OFFSET is not None, "initializer not run"
    return x * x + _OFFSET, os.getpid()


def test_one_worker_and_two_give_the_same_ordered_results() -> None:
    tasks = list(range(12))
    kw = {"initializer": _init, "initargs": (5,), "chunksize": 2}
    serial = list(pool_map(_task, tasks, 1, **kw))
    pooled = list(pool_map(_task, tasks, 2, **kw))
    assert [r for r, _ in serial] == [r for r, _ in pooled] == [x * x + 5 for x in tasks]
    assert {pid for _, pid in serial} == {os.getpid()}  # workers=1 runs in this process
    assert os.getpid() not in {pid for _, pid in pooled}


def test_unordered_results_are_the_same_set_and_empty_input_gives_nothing() -> None:
    tasks = list(range(9))
    out = pool_map(_task, tasks, 2, initializer=_init, initargs=(1,), ordered=False)
    assert sorted(r for r, _ in out) == [x * x + 1 for x in tasks]
    assert list(pool_map(_task, [], 2, initializer=_init, initargs=(1,))) == []
