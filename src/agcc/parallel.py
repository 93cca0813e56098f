"""Process-pool map with a per-process initializer and a progress bar (one runner for all).

:func:`pool_map` runs the tasks in local processes; :func:`ray_map` runs them as Ray tasks, on
a private local Ray instance or a cluster, with the same initializer and ordering semantics.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import tempfile
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


# ---------------------------------------------------------------------------------------------
# Ray: the same map as one Ray task per item (``import ray`` only here, when it is used)

#: Keys of the :func:`ray_map` calls whose initializer already ran in this Ray worker process.
_RAY_READY: dict[str, bool] = {}


def _ray_call(
    fn: Callable[[T], R],
    initializer: Callable[..., None] | None,
    key: str,
    boxed: list[Any],
    task: T,
) -> R:
    """One task in a Ray worker: the call's initializer first if this process has not run it.

    ``boxed`` holds the reference of the ``ray.put`` initargs inside a list, so Ray does not
    fetch them for every task: a process fetches them once, for its initializer.
    """
    if key not in _RAY_READY:
        if initializer is not None:
            import ray

            initializer(*ray.get(boxed[0]))
        _RAY_READY[key] = True
    return fn(task)


def _ray_temp_dir() -> str:
    """Ray's session folder, kept short: its socket paths must stay under 107 bytes."""
    base = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    return os.path.join(base if len(base) <= 40 else "/tmp", "ray")


def _code_path() -> str:
    """This process's import path beyond the interpreter's own, then PYTHONPATH: the workers'."""
    own = (os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix))
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    paths = [p for p in paths if not os.path.realpath(p).startswith(own)]
    return os.pathsep.join(dict.fromkeys([*paths, *filter(None, [os.environ.get("PYTHONPATH")])]))


def _ray_start(ray: Any, workers: int, address: str | None, gpus: int, gpu_share: float) -> bool:
    """Join Ray (initialised here, or ``address``) or start a private instance (True)."""
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.ERROR, "log_to_driver": True}  # worker logs still show
    if address is not None:  # a cluster: agcc must be installed on every node
        ray.init(address=address, **quiet)
        return False
    slots = int(gpus / gpu_share) if gpus and gpu_share else 0  # models the GPUs hold at once
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = _code_path()  # the raylet, and so every worker, inherits it
    try:  # (a runtime_env would do the same a second slower)
        ray.init(
            address="local",  # never an instance that happens to run on this machine
            num_cpus=max(workers, slots),
            num_gpus=gpus,
            include_dashboard=False,
            _temp_dir=_ray_temp_dir(),
            **quiet,
        )
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    return True


def _ray_result(ray: Any, ref: Any, task: T, on_error: Callable[[T, str], R] | None) -> R:
    """A task's result; a task that raised or whose worker died: ``on_error`` or the error."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:
        if on_error is None:
            raise
        return on_error(task, str(err))


def ray_map(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    address: str | None = None,
    gpus: int = 0,
    gpus_per_task: float = 0.0,
    on_error: Callable[[T, str], R] | None = None,
    desc: str = "",
    unit: str = "it",
) -> Iterator[R]:
    """Yield ``fn(task)`` for every task in task order, each task one Ray task.

    ``address`` None starts a private local Ray instance of ``workers`` CPUs and ``gpus`` GPUs
    (shut down at the end; as many CPUs as the GPUs hold tasks when that is more), unless this
    process already joined one; "auto" or "ray://<head>:10001" joins a running cluster. Each
    task takes one CPU and ``gpus_per_task`` GPUs (Ray then sets CUDA_VISIBLE_DEVICES: "cuda"
    in the task is its own GPU; Ray gives GPU tasks a fresh process each). ``initargs`` travel
    once (``ray.put``) and ``initializer(*initargs)`` runs once per worker process before its
    first task. A task that raises (or whose process dies) raises here, or yields
    ``on_error(task, message)`` when given. ``fn`` and ``initializer`` must be importable
    functions: workers import them (a private instance gets this process's import path).
    """
    if not tasks:
        return
    import ray  # here only: the other stages never pay Ray's import

    started = _ray_start(ray, workers, address, gpus, gpus_per_task)
    refs: list[Any] = []
    done = 0
    try:
        remote = ray.remote(_ray_call).options(num_cpus=1, num_gpus=gpus_per_task)
        boxed = [ray.put(initargs)]
        key = boxed[0].hex()
        refs = [remote.remote(fn, initializer, key, boxed, task) for task in tasks]
        with tqdm(total=len(tasks), desc=desc, unit=unit, disable=None) as bar:
            for task, ref in zip(tasks, refs, strict=True):
                yield _ray_result(ray, ref, task, on_error)
                done += 1
                bar.update()
    finally:
        for ref in refs[done + 1 :]:  # a caller that stopped early: stop what still runs
            ray.cancel(ref)
        if started:
            ray.shutdown()
