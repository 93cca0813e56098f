"""``agcc tune``: an Optuna study over one anchored method's own hyperparameters.

``tune.method`` (pa_cc, hard_ag, la_cc or ag_cc) searches every numeric field of its own
``train.<method>`` section within ``tune.ranges``; ag_cc also searches the AG model's k. A fair
Table II tunes every anchored method with the same ``tune.n_trials`` (one study each), or none.
``train.oracle`` is refused: an oracle objective would leak target labels.

objective = UAR on the target DEV split (disjoint from test): each trial trains the method in
``tune.direction`` with the training library the train stage uses (:mod:`agcc.training`: model
init, input statistics, anchoring, :func:`agcc.training.trainer.fit`), once per ``tune.seeds``,
and returns the mean over seeds of the target dev UAR of the model the pipeline would keep
(early stopping on the SOURCE val UAR, as in ``train``).
The per-epoch target dev UAR is reported to a seeded median pruner. k picks among
the models the cluster stage cached (``models/k??.npz``), so no trial re-clusters: the segments
are assigned to another k's centroids once per k and cached in ``assignments_k??.csv``.

Storage is an RDB URL (SQLite file by default, PostgreSQL for several machines). The study
resumes: ``tune.n_trials`` is the number of finished trials the study reaches, counted over all
workers; a count-and-create lock (a file lock for SQLite, an advisory lock for PostgreSQL) keeps
several workers from overshooting it. A trial that raises is recorded FAILED and counts; a
trial cut by Ctrl-C is recorded FAILED, marked ``interrupted`` and does not count. A running
trial beats a heartbeat every ``tune.heartbeat_s`` into the storage; when its worker is killed
(SIGKILL, a lost machine) the next worker to ask for a trial finds it silent for ``tune.grace_s``,
fails it and enqueues a retry with the same values (at most ``tune.max_retry``), so the killed
trial does not count and the study still reaches exactly ``tune.n_trials``.

Outputs in ``out_dir`` (main run, not ``--worker``): best_params.yaml (``dvc exp run -S``
keys), best_params.txt (the ready command), tuned_method.txt (the method tuned, one line, so
Table II can mark its row), best.json, trials.csv, optimization_history.png and
param_importances.png; every trial is a nested MLflow run under the process's ``tune`` run.
The main run writes them once no trial of the study is RUNNING (it waits for the other
workers' last trials, and runs the retries of killed ones), so they cover every trial.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from agcc import tracking
from agcc.devices import resolve_device
from agcc.errors import ConfigError
from agcc.io.cluster_model import load_model, write_assignments
from agcc.io.corpus import Inputs, load_directions
from agcc.io.segments import load_corpora
from agcc.models import SERModel
from agcc.params import BaseParams, TrainParams, TuneParams, searchable_fields
from agcc.sdtw import assign
from agcc.stats import uar
from agcc.training.anchoring import AGInfo, method_anchoring, vowel_distance, warmup_epochs
from agcc.training.data import CorpusData
from agcc.training.trainer import (
    build_model,
    configure_threads,
    fit,
    input_stats,
    model_config,
    predict,
)

log = logging.getLogger(__name__)

OBJECTIVE = "objective = UAR on the target DEV split (disjoint from test)"
#: Study user attribute holding the search space the study was created with.
SPACE_ATTR = "agcc_search_space"
#: Tries to open the storage when workers race to create its tables.
STORAGE_ATTEMPTS = 5
#: Longest pause (s) between two looks at trials still running in other workers.
POLL_S = 5.0
#: The file naming the method a study tuned (one line), for marking its Table II row.
TUNED_METHOD_FILE = "tuned_method.txt"


def param_key(method: str, name: str) -> str:
    """The ``params.yaml`` key a searched value is applied to (k: ``cluster.k``)."""
    return "cluster.k" if name == "k" else f"train.{method}.{name}"


def check_not_oracle(train: TrainParams) -> None:
    """Refuse ``train.oracle: true``: an oracle objective would leak target labels."""
    if train.oracle:
        raise ConfigError(
            "train.oracle is true: tuning refuses it, since oracle anchors read the target "
            "labels and the objective would leak them; set train.oracle: false to tune"
        )


class TuneError(ConfigError):
    """The study cannot be opened or continued (bad storage, another search space, bad split)."""


# ---------------------------------------------------------------------------------------------
# Storage and study


def _safe_url(url: str) -> str:
    """The URL with any password masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def open_storage(url: str, tp: TuneParams | None = None) -> Any:
    """An Optuna RDB storage at ``url``; unreachable or malformed URLs are a :class:`TuneError`.

    With ``tp`` the storage records trial heartbeats (``tp.heartbeat_s``) and fails a trial
    silent for ``tp.grace_s``, enqueuing a retry of it (``tp.max_retry``).
    """
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            with quiet_heartbeat_warnings():
                return optuna.storages.RDBStorage(
                    url, engine_kwargs={"pool_pre_ping": True}, **_heartbeat_kwargs(tp)
                )
        except (IntegrityError, OperationalError, ProgrammingError) as e:
            # workers opening a fresh database together race to create Optuna's tables
            # (SQLite: "locked"; PostgreSQL: DuplicateTable "relation ... already exists")
            if attempt + 1 < STORAGE_ATTEMPTS and (
                isinstance(e, IntegrityError)
                or any(w in str(e) for w in ("locked", "already exists"))
            ):
                time.sleep(1.0 + attempt)
                continue
            raise _unreachable(url, e) from e
        except (SQLAlchemyError, ImportError, ValueError, OSError) as e:
            raise _unreachable(url, e) from e
    raise AssertionError(f"{STORAGE_ATTEMPTS} attempts neither returned nor raised")


def _heartbeat_kwargs(tp: TuneParams | None) -> dict[str, Any]:
    """RDBStorage's heartbeat options of ``tp`` (none without it)."""
    import optuna

    if tp is None:
        return {}
    return {
        "heartbeat_interval": tp.heartbeat_s,
        "grace_period": tp.grace_s,
        "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=tp.max_retry
        ),
    }


def _unreachable(url: str, e: Exception) -> TuneError:
    """The error for a storage URL that cannot be opened."""
    return TuneError(
        f"tune.storage {_safe_url(url)!r} cannot be reached: {type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else e!r}. Check the URL in params.yaml (e.g. "
        "sqlite:///data/tune/optuna.db or postgresql://user@host:5432/db) and that the "
        "server is up"
    )


def search_space(tp: TuneParams, direction: tuple[str, str], max_epochs: int) -> dict:
    """What makes two studies' values comparable: the method, its ranges (and k for ag_cc) and
    the objective's setup."""
    ranges = {name: list(r) for name, r in tp.space().items()}
    return (
        ranges
        | ({"k": sorted(tp.k)} if tp.method == "ag_cc" else {})
        | {
            "method": tp.method,
            "direction": list(direction),
            "seeds": list(tp.seeds),
            "max_epochs": max_epochs,
            "objective": OBJECTIVE,
        }
    )


def open_study(tp: TuneParams, storage: Any, space: dict) -> Any:
    """Create or load the study (seeded TPE, median pruner); refuse another search space."""
    import optuna

    sampler = optuna.samplers.TPESampler(seed=tp.seed)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=tp.pruner_startup_trials, n_warmup_steps=tp.pruner_warmup_epochs
    )
    study = optuna.create_study(
        storage=storage,
        study_name=tp.study,
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is None:
        study.set_user_attr(SPACE_ATTR, space)
        study.set_user_attr("objective", OBJECTIVE)
    elif stored != space:
        diff = sorted(k for k in set(stored) | set(space) if stored.get(k) != space.get(k))
        raise TuneError(
            f"study {tp.study!r} in {_safe_url(storage.url)} was created with another "
            f"search space (differs in {diff}): stored {json.dumps(stored)}, params.yaml "
            f"{json.dumps(space)}. Set a new tune.study_name or restore the old tune section"
        )
    return study


@contextmanager
def study_lock(storage: Any, study_name: str) -> Iterator[None]:
    """Serialise count-and-create across workers: a file lock (SQLite) or an advisory lock."""
    from sqlalchemy import text

    url = storage.engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        with tracking.file_lock(f"{url.database}.{study_name}.lock"):
            yield
    elif url.get_backend_name() == "postgresql":
        key = int.from_bytes(study_name.encode()[:7].ljust(7, b"\0"), "big")
        with storage.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    else:
        log.warning(
            "no cross-worker lock for %s; several workers may overshoot n_trials",
            url.get_backend_name(),
        )
        yield


def counted(study: Any) -> int:
    """Trials that count towards n_trials: finished, running or waiting.

    Not counted: FAILED trials cut by Ctrl-C (``interrupted``) and stale trials of a killed
    worker that were retried (their retry counts instead).
    """
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    trials = study.get_trials(deepcopy=False)
    with quiet_heartbeat_warnings():
        retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials}
    return sum(
        1
        for t in trials
        if not (t.state.name == "FAIL" and (t.user_attrs.get("interrupted") or t.number in retried))
    )


@contextmanager
def heartbeat(storage: Any, trial: Any) -> Iterator[None]:
    """Record the trial's heartbeat in ``storage`` from a thread while the block runs.

    A no-op for a storage without heartbeats. The thread stops with the block; when the process
    is killed it stops beating, and the next worker fails the trial after the grace period.
    """
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            storage.record_heartbeat(trial._trial_id)

    # the first beat before any work: a trial killed at once still goes stale, not RUNNING
    storage.record_heartbeat(trial._trial_id)

    thread = threading.Thread(target=beat, name=f"heartbeat {trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# ---------------------------------------------------------------------------------------------
# Data: the direction's corpora once, cluster labels per k


@dataclass
class TuneContext:
    """What every trial shares: the corpora (labels of the stage's k), models per k, device.

    ``ag`` is the stage's AG model's information (with hard_ag's per-vowel distances), used by
    every method but ag_cc, whose trials pick their k's model from ``per_k``.
    """

    src: CorpusData
    tgt: CorpusData
    tp: TrainParams
    inputs: Inputs
    out_dir: Path
    common_threshold: float
    base_k: int
    device: torch.device
    seeds: tuple[int, ...]
    n_classes: int
    method: str = "ag_cc"  # the method tuned (tune.method)
    ag: AGInfo | None = None
    n_total: int = 0  # counted trials the study reaches
    storage: Any = None  # the study's RDBStorage (its engine serves the cross-worker lock)
    stats: tuple[torch.Tensor, torch.Tensor] | None = None
    per_k: dict[int, tuple[CorpusData, CorpusData, AGInfo]] = field(default_factory=dict)


def _assignments_path(ctx: TuneContext, k: int) -> Path:
    """Assignments of the direction's segments to the cached model of k (cached once per k)."""
    if k == ctx.base_k:
        return ctx.inputs.cluster_dir / "assignments.csv"
    path = ctx.out_dir / f"assignments_k{k:02d}.csv"
    if path.is_file():
        return path
    model = load_model(ctx.inputs.cluster_dir / "models" / f"k{k:02d}.npz")
    table, series = load_corpora([ctx.inputs.segments_root / c.name for c in (ctx.src, ctx.tgt)])
    log.info("k=%d: assigning %d segments to the cached model's centroids", k, len(series))
    labels = assign(series, model.centroids, model.gamma, resolve_device("auto"))
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    write_assignments(table, labels, tmp)
    tmp.replace(path)  # atomic: concurrent workers never read half a file
    return path


def _relabel(data: CorpusData, assigned: pd.DataFrame) -> CorpusData:
    """A copy of ``data`` whose segments carry the cluster ids of ``assigned``."""
    part = assigned[assigned["corpus"] == data.name].set_index("seg_id")["cluster"]
    cluster = part.reindex(data.segments.seg_id).to_numpy()
    if np.isnan(cluster.astype(float)).any():
        raise TuneError(f"assignments for corpus {data.name!r} miss segments; re-run cluster")
    segs = dataclasses.replace(data.segments, cluster=cluster.astype(np.int64))
    return dataclasses.replace(data, segments=segs)


def corpora_for_k(ctx: TuneContext, k: int) -> tuple[CorpusData, CorpusData, AGInfo]:
    """Source and target with the clusters of k, and the AG information of k's cached model."""
    if k not in ctx.per_k:
        path = ctx.inputs.cluster_dir / ("model.npz" if k == ctx.base_k else f"models/k{k:02d}.npz")
        model = load_model(path)
        if model.k != k:
            raise TuneError(f"{path}: holds a model with k={model.k}, expected k={k}")
        assigned = pd.read_csv(_assignments_path(ctx, k), keep_default_na=False)
        src, tgt = (_relabel(d, assigned) for d in (ctx.src, ctx.tgt))
        ctx.per_k[k] = (src, tgt, AGInfo.of(model, ctx.common_threshold))
    return ctx.per_k[k]


def load_context(
    inputs: Inputs,
    tune: TuneParams,
    train: TrainParams,
    base: BaseParams,
    direction: tuple[str, str],
    common_threshold: float,
    out_dir: Path,
    skips: Any,
) -> TuneContext:
    """Load the direction's corpora with the training loader; check the target dev split."""
    source, target = direction
    tp = train.model_copy(
        update={
            "methods": (tune.method,),
            "upper_bound": False,
            "directions": ((source, target),),
            "max_epochs": tune.max_epochs or train.max_epochs,
        }
    )
    model = load_model(inputs.cluster_dir / "model.npz")
    data = load_directions(
        inputs, tp.directions, tp.methods, model.k, base.emotions, skips, base.max_skip_share
    )
    tgt = data[target]
    dev = tgt.rows("dev")
    if not len(dev) or len(np.unique(tgt.labels[dev])) < 2:
        raise TuneError(
            f"corpus {target!r} ({tgt.manifest_path}): the target dev split has "
            f"{len(dev)} utterances with features and {len(np.unique(tgt.labels[dev]))} "
            "emotions; tuning needs a labelled dev split (prepare.split_fractions.dev)"
        )
    device = resolve_device(tp.device, "train.device")
    ag = AGInfo.of(model, common_threshold)
    if tune.method == "hard_ag":  # as the train stage: per-vowel barycentres, seeded base.seed
        log.info("hard_ag: per-vowel barycentres of %s and %s", source, target)
        corpora = [data[c] for c in sorted(direction)]
        vowel_d = vowel_distance(corpora, ag.gamma, base.seed, str(device))
        ag = dataclasses.replace(ag, vowel_distance=vowel_d)
    return TuneContext(
        data[source],
        tgt,
        tp,
        inputs,
        out_dir,
        common_threshold,
        model.k,
        device,
        tune.seeds,
        len(base.emotions),
        tune.method,
        ag,
    )


def trial_corpora(ctx: TuneContext, values: dict) -> tuple[CorpusData, CorpusData, AGInfo]:
    """Source, target and AG information of a trial: k's (ag_cc) or the stage's model's."""
    if ctx.method == "ag_cc":
        return corpora_for_k(ctx, values["k"])
    if ctx.ag is None:
        raise AssertionError("TuneContext.ag is unset; build the context with load_context")
    return ctx.src, ctx.tgt, ctx.ag


# ---------------------------------------------------------------------------------------------
# Objective


def dev_uar(model: SERModel, tgt: CorpusData, batch_size: int) -> float:
    """UAR of ``model`` on the target DEV split (never the test split)."""
    dev = tgt.rows("dev")
    probs = predict(model, tgt, dev, batch_size)
    return uar(tgt.labels[dev], probs.argmax(axis=1), model.config.n_classes)


def _trial_reporter(
    model: SERModel, tgt: CorpusData, trial: Any, child: tracking.StageRun, offset: int, bs: int
) -> Callable[[dict[str, float], int], None]:
    """An on_epoch callback: report the epoch's target dev UAR, prune when the pruner says so."""
    import optuna

    def on_epoch(stats: dict[str, float], epoch: int) -> None:
        """Log and report the epoch's target dev UAR; stop the trial when the pruner says so."""
        stats["dev_uar"] = dev_uar(model, tgt, bs)
        child.log_step(stats, offset + epoch)
        trial.report(stats["dev_uar"], offset + epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"dev UAR {stats['dev_uar']:.4f} at epoch {epoch}")

    return on_epoch


def train_trial(ctx: TuneContext, values: dict, trial: Any, child: tracking.StageRun) -> float:
    """Train the method with the trial's values once per seed; mean target dev UAR (pruned early).

    The trial's values replace those of the method's own section (``train.<method>``); la_cc
    chooses its anchored layers inside :func:`fit` (after its warm-up), as the train stage.
    """
    tp, method = ctx.tp, ctx.method
    hyper = trial_section(tp, values, method)
    src, tgt, ag = trial_corpora(ctx, values)
    anchoring = method_anchoring(method, src, tgt, ag, tp.oracle, ctx.device, hyper)
    if ctx.stats is None:
        ctx.stats = input_stats(src, src.rows("train"))
    config = model_config(tp, src.frames.shape[1:], ctx.n_classes)
    scores, epochs = [], warmup_epochs(anchoring) + tp.max_epochs
    for i, seed in enumerate(ctx.seeds):
        model = build_model(config, seed, ctx.stats, ctx.device)
        report = _trial_reporter(model, tgt, trial, child, i * epochs, 2 * tp.batch_size)
        result = fit(model, src, tgt, anchoring, tp, seed, report)
        scores.append(dev_uar(model, tgt, 2 * tp.batch_size))
        child.log_metrics(
            {f"dev_uar.seed{seed}": scores[-1], f"best_epoch.seed{seed}": result.best_epoch}
        )
    return float(np.mean(scores))


def trial_section(tp: TrainParams, values: dict, method: str = "ag_cc") -> Any:
    """The method's own section (``train.<method>``) with a trial's searched values applied."""
    fields = searchable_fields(method)
    section = tp.hyper(method)
    return section.model_validate(
        section.model_dump() | {k: v for k, v in values.items() if k in fields}
    )


def suggest(trial: Any, tp: TuneParams) -> dict:
    """The trial's values of the method's fields (uniform in ``tune.ranges``; ints as ints)
    and, for ag_cc, k (one of ``tune.k``)."""
    values = {
        name: (trial.suggest_int if isinstance(low, int) else trial.suggest_float)(name, low, high)
        for name, (low, high) in tp.space().items()
    }
    if tp.method == "ag_cc":
        values["k"] = trial.suggest_categorical("k", sorted(tp.k))
    return values


def run_trial(study: Any, ctx: TuneContext, tp: TuneParams, stage: tracking.StageRun) -> Any:
    """Ask, train and tell one trial as a nested MLflow run; returns its frozen trial."""
    import optuna
    from optuna.trial import TrialState

    with study_lock(ctx.storage, study.study_name):
        optuna.storages.fail_stale_trials(study)  # a killed worker's trials -> FAIL + retry
        # a retry of a killed worker's trial is WAITING and already counted: run it anyway
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if counted(study) >= ctx.n_total and not waiting:
            return None
        trial = study.ask()
        if getattr(ctx.storage, "get_heartbeat_interval", lambda: None)():
            # beat at once: a worker killed before its trial's first beat would otherwise leave
            # a RUNNING trial that no heartbeat check ever fails
            ctx.storage.record_heartbeat(trial._trial_id)
    # one seeded TPE per trial number: a resumed study or a second worker does not replay the
    # first one's random draws, and a trial's draw depends on the seed, its number and history
    study.sampler = optuna.samplers.TPESampler(seed=tp.seed + trial.number)
    values = suggest(trial, tp)
    name = f"trial {trial.number}"
    try:
        with stage.child(name, values | {"trial": trial.number, "study": study.study_name}) as ch:
            ch.set_tags(
                {
                    "optuna.study": study.study_name,
                    "optuna.trial": trial.number,
                    "objective": OBJECTIVE,
                }
            )
            try:
                with heartbeat(ctx.storage, trial):
                    value = train_trial(ctx, values, trial, ch)
            except optuna.TrialPruned as e:
                ch.set_tags({"state": "PRUNED"})
                log.info("%s pruned: %s (%s)", name, e, OBJECTIVE)
                return study.tell(trial, state=TrialState.PRUNED)
            ch.log_metrics({"dev_uar_mean": value})
            ch.set_tags({"state": "COMPLETE"})
    except Exception:  # a broken trial is recorded FAILED and the study goes on
        log.exception("%s failed with %s; recorded as FAILED, the study goes on", name, values)
        return study.tell(trial, state=TrialState.FAIL)
    except BaseException:  # Ctrl-C: not the trial's fault, does not count towards n_trials
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=TrialState.FAIL)
        raise
    log.info("%s: dev UAR %.4f with %s (%s)", name, value, values, OBJECTIVE)
    return study.tell(trial, value)


def optimize(study: Any, ctx: TuneContext, tp: TuneParams, stage: tracking.StageRun) -> int:
    """Run trials until the study holds ``ctx.n_total`` counted trials; returns how many ran."""
    from tqdm import tqdm

    n = 0
    with (
        quiet_heartbeat_warnings(),
        tqdm(total=ctx.n_total, initial=counted(study), desc="tune trials") as bar,
    ):
        while run_trial(study, ctx, tp, stage) is not None:
            n += 1
            bar.update(1)
    return n


def wait_for_trials(study: Any, ctx: TuneContext, tp: TuneParams, stage: tracking.StageRun) -> int:
    """Wait until no trial of the study is RUNNING; returns the trials this process ran meanwhile.

    The main run writes the outputs only after the other workers' last trials, so that they
    cover every trial. It polls the storage every ``min(tp.heartbeat_s, POLL_S)`` seconds; each
    poll fails the trials whose heartbeat stopped for ``tp.grace_s`` (a killed worker) and runs
    their retries here. A trial that never beat and started more than ``tp.grace_s`` ago cannot
    be failed by the heartbeat check: it is not waited for (a warning names it).
    """
    from optuna.trial import TrialState

    ran, last = 0, None
    while True:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        lost = never_beat(ctx.storage, running, tp.grace_s)
        waited = sorted(t.number for t in running if t._trial_id not in lost)
        if not waited:
            if lost:
                log.warning("trials %s never recorded a heartbeat; not waited for", sorted(lost))
            return ran
        if waited != last:
            log.info("waiting for trials %s running in other workers", waited)
            last = waited
        time.sleep(min(float(tp.heartbeat_s), POLL_S))
        with quiet_heartbeat_warnings():
            while run_trial(study, ctx, tp, stage) is not None:
                ran += 1


def never_beat(storage: Any, running: list[Any], grace_s: float) -> set[int]:
    """Trial ids among ``running`` without a heartbeat that started over ``grace_s`` ago."""
    from sqlalchemy import text

    if not running or not getattr(storage, "get_heartbeat_interval", lambda: None)():
        return set()
    with storage.engine.connect() as conn:
        beating = {row[0] for row in conn.execute(text("SELECT trial_id FROM trial_heartbeats"))}
    now = datetime.now()  # Optuna stamps trial starts with the local, naive time
    return {
        t._trial_id
        for t in running
        if t._trial_id not in beating
        and t.datetime_start is not None
        and (now - t.datetime_start).total_seconds() > grace_s
    }


@contextmanager
def quiet_heartbeat_warnings() -> Iterator[None]:
    """Silence Optuna's notes on its heartbeat API (experimental since 2.8, and "meant for
    Study.optimize", which this ask-and-tell loop replaces with :func:`heartbeat`)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
        yield


# ---------------------------------------------------------------------------------------------
# Outputs


def best_params_yaml(
    best: dict, value: float, study_name: str, number: int, method: str = "ag_cc"
) -> str:
    """best_params.yaml: ``<params.yaml key>: value`` lines for ``dvc exp run -S``."""
    head = (
        f"# {OBJECTIVE}\n# tuned method {method}: study {study_name!r}, best trial {number}: "
        f"target dev UAR {value:.4f}\n"
    )
    lines = {
        param_key(method, k): int(v) if isinstance(v, int) else round(float(v), 6)
        for k, v in best.items()
    }
    return head + yaml.safe_dump(lines, sort_keys=False)


def exp_run_command(best: dict, method: str = "ag_cc") -> str:
    """The ``dvc exp run -S key=value ...`` command applying the best parameters."""
    text = yaml.safe_load(best_params_yaml(best, 0.0, "", 0, method))
    return "dvc exp run " + " ".join(f"-S {k}={v}" for k, v in text.items())


def _no_importances(study: Any) -> Any:
    """A placeholder axes: importances need at least 2 complete trials."""
    from matplotlib.figure import Figure

    ax = Figure(figsize=(6, 2)).add_subplot()
    ax.text(
        0.5,
        0.5,
        f"study {study.study_name!r}: parameter importances need >= 2 complete trials",
        ha="center",
        va="center",
        wrap=True,
    )
    ax.set_axis_off()
    return ax


def save_plots(study: Any, out_dir: Path, stage: tracking.StageRun) -> list[Path]:
    """Optuna's optimisation history and parameter importances (>= 2 complete trials)."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    plots = {"optimization_history.png": ovm.plot_optimization_history}
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= 2:
        plots["param_importances.png"] = ovm.plot_param_importances
    else:
        log.info("fewer than 2 complete trials: param_importances.png says so instead of a plot")
        plots["param_importances.png"] = _no_importances
    paths = []
    for name, plot in plots.items():
        ax = plot(study)
        fig = ax.figure
        fig.suptitle(OBJECTIVE, fontsize=8)
        fig.savefig(out_dir / name, dpi=100, bbox_inches="tight")
        if hasattr(fig, "number"):  # a pyplot figure (Optuna's plots): release it
            import matplotlib.pyplot as plt

            plt.close(fig)
        stage.log_artifact(out_dir / name)
        paths.append(out_dir / name)
    return paths


def write_outputs(
    study: Any,
    out_dir: Path,
    stage: tracking.StageRun,
    method: str = "ag_cc",
    n_trials: int | None = None,
) -> dict[str, float]:
    """best_params.yaml/.txt, tuned_method.txt, best.json, trials.csv and the plots; the
    stage's metrics (``n_trials``: the trials the study was to reach, and the count per state)."""
    from optuna.trial import TrialState

    states = pd.Series([t.state.name for t in study.get_trials(deepcopy=False)])
    metrics = {"n_trials": n_trials if n_trials is not None else counted(study)} | {
        f"n_{s.lower()}": int((states == s).sum())
        for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
    }
    study.trials_dataframe().to_csv(out_dir / "trials.csv", index=False)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise TuneError(f"study {study.study_name!r} has no complete trial; see the log")
    best = study.best_trial
    (out_dir / "best_params.yaml").write_text(
        best_params_yaml(best.params, best.value, study.study_name, best.number, method)
    )
    (out_dir / "best_params.txt").write_text(
        f"# {OBJECTIVE}\n# tuned method {method}, best trial {best.number}: target dev UAR "
        f"{best.value:.4f}\n{exp_run_command(best.params, method)}\ndvc repro\n"
    )
    (out_dir / TUNED_METHOD_FILE).write_text(f"{method}\n")
    metrics |= {"best_dev_uar": round(float(best.value), 6), "best_trial": best.number}
    (out_dir / "best.json").write_text(
        json.dumps(
            metrics | {"method": method, "objective": OBJECTIVE, "best_params": best.params},
            indent=2,
        )
        + "\n"
    )
    for name in (
        "best_params.yaml",
        "best_params.txt",
        TUNED_METHOD_FILE,
        "best.json",
        "trials.csv",
    ):
        stage.log_artifact(out_dir / name)
    save_plots(study, out_dir, stage)
    log.info(
        "%s: best trial %d: %s, dev UAR %.4f (%s); apply with: %s",
        method,
        best.number,
        best.params,
        best.value,
        OBJECTIVE,
        exp_run_command(best.params, method),
    )
    return metrics


# ---------------------------------------------------------------------------------------------
# Stage


def _run_tags(tp: TuneParams) -> dict[str, str]:
    """MLflow tags of the stage's run: the study, the method tuned and the objective."""
    return {
        "optuna.study": tp.study,
        "tuned_method": tp.method,
        "objective": OBJECTIVE,
        "mlflow.note.content": f"Optuna study {tp.study!r} of {tp.method}: {OBJECTIVE}",
    }


def run(
    inputs: Inputs,
    tp: TuneParams,
    train: TrainParams,
    base: BaseParams,
    direction: tuple[str, str],
    common_threshold: float,
    out_dir: Path,
    n_trials: int | None = None,
    worker: bool = False,
    metrics_path: Path | None = None,
) -> Any:
    """Create or resume the study, run trials until it holds n_trials, write the outputs.

    ``direction`` is the [source, target] pair to tune on (``Params.tune_direction()``) and
    ``common_threshold`` is ``analyze.common_threshold``; ``tp.k`` must name cached AG models
    (``Params.check_tune_k()``, ag_cc only); ``train.oracle`` is refused (a ConfigError). A
    ``worker`` runs trials only (several may share one study);
    the main run also writes best_params.yaml/.txt, trials.csv, best.json and the plots.
    Returns the study.
    """
    check_not_oracle(train)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(tp.storage, tp)
    study = open_study(tp, storage, search_space(tp, direction, tp.max_epochs or train.max_epochs))
    params = {
        "tune": tp.model_dump() | {"storage": _safe_url(tp.storage), "study_name": tp.study},
        "train": train.model_dump(),
        "worker": worker,
        "objective": OBJECTIVE,
    }
    with tracking.stage_run(
        "tune",
        params=params,
        metrics_path=None if worker else metrics_path,
        max_skip_share=base.max_skip_share,
    ) as st:
        st.set_tags(_run_tags(tp))
        ctx = load_context(inputs, tp, train, base, direction, common_threshold, out_dir, st.skips)
        ctx.n_total, ctx.storage = n_trials or tp.n_trials, storage
        configure_threads(ctx.device)
        log.info(
            "study %r (%s) in %s: %d of %d trials counted; %s",
            tp.study,
            tp.method,
            _safe_url(tp.storage),
            counted(study),
            ctx.n_total,
            OBJECTIVE,
        )
        ran = optimize(study, ctx, tp, st)
        if not worker:  # the outputs cover every trial: wait for the other workers' last ones
            ran += wait_for_trials(study, ctx, tp, st)
        st.metrics["n_run_here"] = ran
        if not worker:
            st.metrics |= write_outputs(study, out_dir, st, tp.method, ctx.n_total)
            st.headline["dev_uar"] = 100 * st.metrics["best_dev_uar"]
    return study
