"""Process-pool map with a per-process initializer and a progress bar (one runner for all)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def _pool_iter(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    workers: int,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    ordered: bool,
    chunksize: int,
    start_method: str,
) -> Iterator[R]:
    """Results of ``fn`` over ``tasks`` from a pool of ``workers`` processes."""
    ctx = mp.get_context(start_method)
    with ctx.Pool(workers, initializer=initializer, initargs=initargs) as pool:
        mapper = pool.imap if ordered else pool.imap_unordered
        yield from mapper(fn, tasks, chunksize=chunksize)


def _in_process(
    fn: Callable[[T], R],
    tasks: Iterable[T],
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
) -> Iterator[R]:
    """Results of ``fn`` over ``tasks`` in this process, after running the initializer once."""
    if initializer is not None:
        initializer(*initargs)
    for task in tasks:
        yield fn(task)


def pool_map(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    ordered: bool = True,
    chunksize: int = 1,
    desc: str = "",
    unit: str = "it",
    start_method: str = "spawn",
) -> Iterator[R]:
    """Yield ``fn(task)`` for every task, run in ``workers`` processes (in-process for one).

    ``initializer(*initargs)`` runs once per process before its first task (load a model).
    ``ordered`` yields results in task order, otherwise as they finish. A tqdm bar counts
    finished tasks (hidden when stderr is not a terminal). ``start_method`` "spawn" is the
    safe default for native libraries (dlib, FFmpeg); "fork" falls back to "spawn" where the
    platform lacks it.
    """
    if not tasks:
        return
    if start_method not in mp.get_all_start_methods():
        start_method = "spawn"
    n = min(max(1, workers), len(tasks))
    if n == 1:
        results = _in_process(fn, tasks, initializer, initargs)
    else:
        results = _pool_iter(fn, tasks, n, initializer, initargs, ordered, chunksize, start_method)
    with tqdm(total=len(tasks), desc=desc, unit=unit, disable=None) as bar:
        for result in results:
            yield result
            bar.update()
