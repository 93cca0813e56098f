"""The process-pool runner: the same results in-process and in a pool, initializer run once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agcc.parallel import pool_map, ray_map

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


# ---------------------------------------------------------------------------------------------
# ray_map: the same semantics as Ray tasks on a private local Ray instance

#: Initializer calls in this process (a Ray worker's count shows it ran once there).
_CALLS: list[int] = []


def _count_init(offset: int) -> None:
    """The initializer, counting its calls in this process."""
    _init(offset)
    _CALLS.append(offset)


def _ray_task(x: int) -> tuple[int, int, int]:
    """(x squared plus the offset, process id, initializer calls here); 3 fails."""
    if x == 3:
        raise ValueError(f"task {x} failed")
    value, pid = _task(x)
    return value, pid, len(_CALLS)


@pytest.mark.slow
def test_ray_map_gives_ordered_results_initializes_once_per_worker_and_reports_failures() -> None:
    ray = pytest.importorskip("ray")
    tasks = list(range(10))
    out = list(
        ray_map(
            _ray_task, tasks, 2, initializer=_count_init, initargs=(5,),
            on_error=lambda task, message: (task, message),
        )
    )  # fmt: skip
    assert not ray.is_initialized()  # the private instance is shut down
    failed = out.pop(3)
    assert failed[0] == 3 and "ValueError: task 3 failed" in failed[1]
    assert [r for r, _, _ in out] == [x * x + 5 for x in tasks if x != 3]
    pids = {pid for _, pid, _ in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # two worker processes at most
    assert {calls for _, _, calls in out} == {1}  # the initializer ran once in each
    assert _CALLS == []  # and never in this process
    assert list(ray_map(_ray_task, [], 2, initializer=_count_init, initargs=(5,))) == []


@pytest.mark.slow
def test_ray_map_raises_a_failed_task_without_on_error_and_stops_ray() -> None:
    ray = pytest.importorskip("ray")
    results = ray_map(_ray_task, [1, 3, 4], 1, initializer=_count_init, initargs=(0,))
    assert next(results)[0] == 1
    with pytest.raises(ValueError, match="task 3 failed"):
        next(results)
    assert not ray.is_initialized()


def test_only_ray_map_imports_ray() -> None:
    code = "import sys, agcc.cli, agcc.stages.train; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the other stages never pay Ray's import
