"""Stage ``train``: one method's SER models, AG anchoring or a baseline (docs/method.md section 7).

``agcc train --method M`` trains ONE method of ``train.methods`` (the DVC stage ``train@M``), so
a method's own hyperparameters (``train.M``) are dependencies of its runs only. One run trains
one :class:`agcc.models.SERModel`, once per (model, seed), and predicts the TEST split of every
target it serves:

* anchored methods (pa_cc, hard_ag, la_cc, ag_cc): one model per (direction, seed), trained on
  the labelled source with the unlabelled target, tested on the direction's target;
* ``source_only``: one model per (corpus, seed) for every source of ``train.directions`` (plus
  every target with ``train.upper_bound``), trained on that corpus alone, tested on the target
  of each direction it is the source of (rows ``source_only``) and, with ``train.upper_bound``,
  on its own corpus (rows ``upper_bound``, source = target: the paper's C->C / I->I rows). The
  upper bound is therefore the same checkpoint as the source_only model of that corpus, never a
  second training.

All methods share one trainer (:mod:`agcc.training.trainer`) and a seed gives every method the
same initial weights; how each method anchors is :mod:`agcc.training.anchoring`, with the
method's section travelling on its :class:`~agcc.training.anchoring.Anchoring`.
``train.oracle`` gives the triplet methods the true target labels: analysis only, and such runs
say ORACLE in their name, MLflow tags, folders and Table II rows.

Outputs under ``out_dir`` (``data/train/<method>``): ``runs/<key>[_ORACLE]/seed<k>/`` with
model.pt (:func:`agcc.io.checkpoint.load_checkpoint`), history.csv (per-epoch losses,
validation UAR and, for the triplet methods, anchors, triplets, common pairs, labelled shares
and the mean and std of w; for la_cc the CORAL term unweighted and times gamma, ``coral`` and
``gamma_coral``, and ``warmup`` = 1 on its source-only warm-up epochs; also the nested run's
MLflow step metrics) and per served target
predictions_<target>.csv (utt_id, true, pred, prob_<emotion>...) and confusion_<target>.png,
where ``<key>`` is ``<source>_to_<target>`` for anchored methods and the corpus for
source_only; runs.csv (one row per served target, with the columns of
:data:`agcc.io.predictions.RUN_COLUMNS`; paths relative to ``out_dir``), skips.csv and
metrics.json (mean test UAR per direction; no wall-clock time, which goes to MLflow).
Utterances without features are skipped and counted (the stage fails loudly above
``base.max_skip_share`` before training); NaN/inf features, a class missing from a training
split and stale segments or clusters are errors naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from agcc import tracking
from agcc.devices import resolve_device
from agcc.errors import ConfigError
from agcc.figures import plot_confusion
from agcc.io.checkpoint import save_checkpoint
from agcc.io.cluster_model import load_model
from agcc.io.corpus import Inputs, load_directions
from agcc.io.predictions import ORACLE_SUFFIX, write_predictions
from agcc.models import SERConfig, SERModel
from agcc.parallel import pool_map, ray_map
from agcc.params import BaseParams, TrainParams
from agcc.skips import SkipReport
from agcc.stats import confusion_matrix, uar
from agcc.training.anchoring import (
    TRIPLET_METHODS,
    AGInfo,
    Anchoring,
    check_top_m,
    method_anchoring,
    vowel_distance,
)
from agcc.training.data import CorpusData, binary_view
from agcc.training.trainer import (
    balanced_class_weight,
    build_model,
    configure_threads,
    fit,
    input_stats,
    model_config,
    predict,
)

log = logging.getLogger(__name__)

#: Folder of the run folders inside a method's output folder.
RUNS_DIR = "runs"
#: The task of the models with one output per emotion; binary ones are ``binary_<emotion>``.
MULTICLASS = "multiclass"


def binary_task(emotion: str) -> str:
    """The task name of the one-vs-rest model of ``emotion``."""
    return f"binary_{emotion}"


# ---------------------------------------------------------------------------------------------
# The runs of one method


@dataclass(frozen=True)
class Served:
    """One target a trained model is tested on: a runs.csv row (method, source, target)."""

    method: str  # the row's method: the trained method, or upper_bound for source_only
    source: str
    target: str

    @property
    def direction(self) -> str:
        """``<source>_to_<target>`` (``<c>_to_<c>`` for an upper bound)."""
        return f"{self.source}_to_{self.target}"


@dataclass(frozen=True)
class RunSpec:
    """One trained model: a method on a training corpus (anchored: to a target) with a seed."""

    method: str
    source: str  # the labelled training corpus
    target: str | None  # anchored methods: the direction's target; source_only: None
    seed: int
    oracle: bool = False  # true target labels for the anchors (analysis only)
    serves: tuple[Served, ...] = ()
    task: str = MULTICLASS  # multiclass, or binary_<emotion> (one-vs-rest)

    @property
    def method_dir(self) -> str:
        """The method's key, with ``_ORACLE`` when true target labels were used."""
        return self.method + (ORACLE_SUFFIX if self.oracle else "")

    @property
    def key(self) -> str:
        """``<source>_to_<target>`` for an anchored run, the corpus for source_only."""
        return self.source if self.target is None else f"{self.source}_to_{self.target}"

    @property
    def name(self) -> str:
        """Run name, e.g. ``ag_cc:demo_crema->demo_improv:seed1``, ``source_only:c:seed1`` or
        ``ag_cc:demo_crema->demo_improv:binary_anger:seed1``."""
        where = self.source if self.target is None else f"{self.source}->{self.target}"
        task = "" if self.task == MULTICLASS else f"{self.task}:"
        return f"{self.method_dir}:{where}:{task}seed{self.seed}"

    def folder(self, out_dir: Path) -> Path:
        """``out_dir/runs/<key>[_ORACLE]/seed<k>``; binary models ``.../<key>/<task>/seed<k>``."""
        folder = out_dir / RUNS_DIR / f"{self.key}{ORACLE_SUFFIX if self.oracle else ''}"
        if self.task != MULTICLASS:
            folder = folder / self.task
        return folder / f"seed{self.seed}"


def source_only_corpora(tp: TrainParams) -> list[str]:
    """Corpora source_only trains on: every source, plus every target with upper_bound."""
    names = [s for s, _ in tp.directions]
    if tp.upper_bound:
        names += [t for _, t in tp.directions]
    return list(dict.fromkeys(names))


def _source_only_serves(tp: TrainParams, corpus: str) -> tuple[Served, ...]:
    """The targets of a corpus's source_only model: its directions' targets and itself (ub)."""
    serves = [Served("source_only", s, t) for s, t in tp.directions if s == corpus]
    if tp.upper_bound:
        serves.append(Served("upper_bound", corpus, corpus))
    return tuple(serves)


def tasks(tp: TrainParams, emotions: tuple[str, ...]) -> tuple[str, ...]:
    """The models per (corpus or direction, seed): multiclass, and one binary per emotion."""
    binary = tuple(binary_task(e) for e in emotions) if tp.binary_models else ()
    return (MULTICLASS, *binary)


def method_runs(tp: TrainParams, method: str, emotions: tuple[str, ...] = ()) -> list[RunSpec]:
    """The models of one method: per (corpus, seed) for source_only, else per (direction, seed),
    each once per task (:func:`tasks`; ``emotions`` name the binary models)."""
    tp.check_method(method)
    if method == "source_only":
        return [
            RunSpec(method, c, None, seed, serves=_source_only_serves(tp, c), task=task)
            for task in tasks(tp, emotions)
            for c in source_only_corpora(tp)
            for seed in tp.seeds
        ]
    oracle = tp.oracle and method in TRIPLET_METHODS
    return [
        RunSpec(method, s, t, seed, oracle, (Served(method, s, t),), task)
        for task in tasks(tp, emotions)
        for s, t in tp.directions
        for seed in tp.seeds
    ]


@dataclass
class MethodContext:
    """Everything the runs of one method share."""

    data: dict[str, CorpusData]
    anchorings: dict[tuple[str, str | None], Anchoring]  # (source, target or None)
    config: SERConfig
    tp: TrainParams
    emotions: tuple[str, ...]
    device: torch.device
    out_dir: Path
    stats: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)

    def input_stats(self, name: str) -> tuple[Tensor, Tensor]:
        """Frame statistics of a corpus's training split (computed once)."""
        if name not in self.stats:
            self.stats[name] = input_stats(self.data[name], self.data[name].rows("train"))
        return self.stats[name]

    def classes(self, task: str) -> tuple[str, ...]:
        """Class names of a task: the emotions, or (not_<e>, <e>) for binary_<e>."""
        if task == MULTICLASS:
            return self.emotions
        emotion = task.removeprefix("binary_")
        return (f"not_{emotion}", emotion)

    def corpus(self, name: str | None, task: str) -> CorpusData | None:
        """A corpus with the task's labels (one-vs-rest for a binary task)."""
        if name is None or task == MULTICLASS:
            return None if name is None else self.data[name]
        return binary_view(self.data[name], self.emotions.index(task.removeprefix("binary_")))


@dataclass
class Trained:
    """What one training run produced; picklable, so a worker process can return it."""

    best_epoch: int
    best_val_uar: float
    history: list[dict[str, float]]
    anchored: dict  # la_cc: anchored layers, their site and every layer's similarity
    tested: dict[str, tuple[float, str]]  # target -> (test UAR, predictions file)
    seconds: float


def train_model(spec: RunSpec, ctx: MethodContext) -> Trained:
    """Train and early-stop one model, predict every served target; write the run's files.

    A binary task trains on one-vs-rest labels with class-balanced cross-entropy
    (:func:`agcc.training.trainer.balanced_class_weight`); everything else, anchoring and
    early stopping on the source validation UAR included, is the multiclass model's.
    """
    t0 = time.perf_counter()
    src = ctx.corpus(spec.source, spec.task)
    anchoring = ctx.anchorings[(spec.source, spec.target)]
    second = ctx.corpus(spec.target, spec.task) if anchoring.kind != "none" else None
    n_classes = len(ctx.classes(spec.task))
    config = dataclasses.replace(ctx.config, n_classes=n_classes)
    model = build_model(config, spec.seed, ctx.input_stats(spec.source), ctx.device)
    weight = None
    if spec.task != MULTICLASS:
        weight = balanced_class_weight(src.labels[src.rows("train")], n_classes).to(ctx.device)
    result = fit(model, src, second, anchoring, ctx.tp, spec.seed, class_weight=weight)
    anchoring = result.anchoring or anchoring
    anchored = {
        "anchored_layers": list(anchoring.layers),
        "anchored_site": anchoring.site if anchoring.kind == "coral" else "",
        "layer_similarity": list(anchoring.similarity),
    }
    folder = spec.folder(ctx.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(result.history).to_csv(folder / "history.csv", index=False)
    meta = (
        asdict(spec)
        | anchored
        | {
            "serves": [asdict(s) for s in spec.serves],
            "emotions": list(ctx.emotions),
            "classes": list(ctx.classes(spec.task)),
            "best_epoch": result.best_epoch,
            "hyper": anchoring.hyper.model_dump() if anchoring.hyper is not None else {},
        }
    )
    save_checkpoint(folder / "model.pt", model, meta)
    tested = {t: _test_target(spec, ctx, model, t) for t in _targets(spec)}
    seconds = time.perf_counter() - t0
    best = (result.best_epoch, result.best_val_uar)
    return Trained(*best, result.history, anchored, tested, seconds)


def _targets(spec: RunSpec) -> list[str]:
    """The distinct targets a run is tested on, in order."""
    return list(dict.fromkeys(s.target for s in spec.serves))


def _test_target(
    spec: RunSpec, ctx: MethodContext, model: SERModel, target: str
) -> tuple[float, str]:
    """predictions_<target>.csv and confusion_<target>.png of one target's test split."""
    tgt, classes = ctx.corpus(target, spec.task), ctx.classes(spec.task)
    folder = spec.folder(ctx.out_dir)
    test = tgt.rows("test")
    probs = predict(model, tgt, test, 2 * ctx.tp.batch_size)
    path = folder / f"predictions_{target}.csv"
    write_predictions(path, tgt.utt_ids[test], tgt.labels[test], probs, classes)
    pred = probs.argmax(axis=1)
    test_uar = uar(tgt.labels[test], pred, len(classes))
    cm = confusion_matrix(tgt.labels[test], pred, len(classes))
    fig = plot_confusion(cm, classes, f"{spec.name} on {target}: test UAR {test_uar:.3f}")
    fig.savefig(folder / f"confusion_{target}.png", dpi=100)
    return test_uar, str(path)


def record(
    spec: RunSpec, trained: Trained, ctx: MethodContext, child: tracking.StageRun
) -> list[dict]:
    """Log a finished run to its MLflow run (epochs as steps, files, metrics); its rows."""
    for step in trained.history:
        child.log_step({k: v for k, v in step.items() if k != "epoch"}, int(step["epoch"]))
    if trained.anchored["anchored_site"]:  # la_cc: every layer's similarity, the chosen ones
        layers, site = trained.anchored["anchored_layers"], trained.anchored["anchored_site"]
        sims = trained.anchored["layer_similarity"]
        child.log_metrics({f"layer_similarity.{i}": x for i, x in enumerate(sims)})
        child.set_tags({"anchored_layers": f"{site}:{layers}"})
        log.info("%s: anchored %s layers %s (similarity %s)", spec.name, site, layers,
                 [round(x, 3) for x in sims])  # fmt: skip
    folder = spec.folder(ctx.out_dir)
    child.log_model(folder / "model.pt", ctx.data[spec.source].features_path.parent)
    for target in trained.tested:
        child.log_artifact(folder / f"confusion_{target}.png")
    child.log_metrics(
        {"best_val_uar": trained.best_val_uar, "best_epoch": trained.best_epoch}
        | {f"test_uar.{t}": u for t, (u, _) in trained.tested.items()}
        | {"seconds": trained.seconds}
    )
    return [_row(spec, ctx, served, trained) for served in spec.serves]


def _row(spec: RunSpec, ctx: MethodContext, served: Served, trained: Trained) -> dict:
    """The runs.csv row of one served target of a finished run."""
    test_uar, path = trained.tested[served.target]
    return _base_row(spec, served, "FINISHED") | {
        "best_epoch": trained.best_epoch,
        "epochs": len(trained.history),
        "val_uar": trained.best_val_uar,
        "test_uar": test_uar,
        "predictions": str(Path(path).relative_to(ctx.out_dir)),
        "checkpoint": str((spec.folder(ctx.out_dir) / "model.pt").relative_to(ctx.out_dir)),
    }


def _base_row(spec: RunSpec, served: Served, status: str) -> dict:
    """The columns every runs.csv row has, finished or not."""
    oracle = spec.oracle and served.method == spec.method
    return {
        "direction": served.direction,
        "source": served.source,
        "target": served.target,
        "method": served.method,
        "task": spec.task,
        "oracle": oracle,
        "method_dir": served.method + (ORACLE_SUFFIX if oracle else ""),
        "seed": spec.seed,
        "model": spec.name,
        "status": status,
    }


#: The method's context in a worker process (set once per process by :func:`_init_worker`).
_WORKER: dict[str, MethodContext] = {}


def _init_worker(ctx: MethodContext, level: int) -> None:
    """A training process: logging like the parent's, torch threads, the shared context."""
    if not logging.getLogger().handlers:  # a spawned process: nothing configured yet
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
        logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S")
    configure_threads(ctx.device, ctx.tp.workers)
    _WORKER["ctx"] = ctx


def _train_task(spec: RunSpec) -> tuple[RunSpec, Trained | str]:
    """One run in a worker: its result, or the traceback of its failure (the others go on)."""
    try:
        return spec, train_model(spec, _WORKER["ctx"])
    except Exception:  # one broken run must not stop the others; the stage fails at the end
        return spec, traceback.format_exc()


def _lost_task(spec: RunSpec, message: str) -> tuple[RunSpec, str]:
    """A Ray task that failed outside :func:`_train_task` (its process died): a failed run."""
    return spec, message


def _results(
    specs: list[RunSpec], ctx: MethodContext, level: int
) -> Iterator[tuple[RunSpec, Trained | str]]:
    """Every run's result in spec order, from ``train.engine``: local processes or Ray tasks.

    With Ray on CUDA each run takes ``train.gpus_per_run`` of a GPU, which it sees as "cuda";
    a private instance gets every visible GPU. Outputs do not depend on the engine.
    """
    tp = ctx.tp
    kw = {"initializer": _init_worker, "initargs": (ctx, level), "desc": "train runs"}
    if tp.engine == "local":
        return pool_map(_train_task, specs, tp.workers, unit="model", **kw)
    cuda = ctx.device.type == "cuda"
    return ray_map(
        _train_task, specs, tp.workers, address=tp.ray_address,
        gpus=torch.cuda.device_count() if cuda else 0,
        gpus_per_task=tp.gpus_per_run if cuda else 0.0,
        on_error=_lost_task, unit="model", **kw,
    )  # fmt: skip


def run_method(
    specs: list[RunSpec], ctx: MethodContext, stage: tracking.StageRun
) -> tuple[list[dict], list[str]]:
    """Every model, ``train.workers`` at a time (or as Ray schedules them, ``train.engine``);
    each logged as a nested MLflow run in spec order. A failed run is recorded (FAILED in
    runs.csv and MLflow) and the others go on."""
    rows, failed = [], []
    for source in {s.source for s in specs}:  # computed once here, not in every worker
        ctx.input_stats(source)
    level = logging.getLogger("agcc").getEffectiveLevel()
    for spec, out in _results(specs, ctx, level):
        params = asdict(spec) | {"train": ctx.tp.model_dump()}
        try:
            with stage.child(spec.name, params) as child:
                child.set_tags(
                    {
                        "method": spec.method_dir,
                        "task": spec.task,
                        "train_corpus": spec.source,
                        "targets": " ".join(_targets(spec)),
                        "oracle": "ORACLE" if spec.oracle else "no",
                    }
                )
                if isinstance(out, str):
                    raise RuntimeError(f"training failed:\n{out}")
                new = record(spec, out, ctx, child)  # no wall-clock time in DVC outputs
        except Exception:
            log.exception("train run %s failed", spec.name)
            failed.append(spec.name)
            new = [_base_row(spec, served, "FAILED") for served in spec.serves]
        rows += new
        log.info("%s: %s", spec.name, new[0]["status"])
    return rows, failed


# ---------------------------------------------------------------------------------------------
# Stage


def load_inputs(
    inputs: Inputs,
    tp: TrainParams,
    method: str,
    base: BaseParams,
    skips: SkipReport,
    threshold: float,
) -> tuple[dict[str, CorpusData], AGInfo]:
    """Every corpus of the directions, checked for ``method``; the AG model's k and distances."""
    model = load_model(inputs.cluster_dir / "model.npz")
    checked = (method, "upper_bound") if method == "source_only" and tp.upper_bound else (method,)
    data = load_directions(
        inputs, tp.directions, checked, model.k, base.emotions, skips, base.max_skip_share
    )
    return data, AGInfo.of(model, threshold)


def _anchorings(
    method: str,
    data: dict[str, CorpusData],
    ag: AGInfo,
    tp: TrainParams,
    seed: int,
    device: torch.device,
) -> dict[tuple[str, str | None], Anchoring]:
    """The method's anchoring per (source, target): one per corpus (no target) for source_only."""
    hyper = tp.hyper(method)
    if method == "source_only":
        return {
            (c, None): method_anchoring(method, data[c], data[c], ag, False, device, hyper)
            for c in source_only_corpora(tp)
        }
    out, vowel_d = {}, {}
    for src, tgt in tp.directions:
        pair = tuple(sorted((src, tgt)))
        if method == "hard_ag" and pair not in vowel_d:
            log.info("hard_ag: per-vowel barycentres of %s and %s", *pair)
            vowel_d[pair] = vowel_distance([data[c] for c in pair], ag.gamma, seed, str(device))
        direction_ag = dataclasses.replace(ag, vowel_distance=vowel_d.get(pair))
        out[(src, tgt)] = method_anchoring(
            method, data[src], data[tgt], direction_ag, tp.oracle, device, hyper
        )
    return out


def build_context(
    method: str,
    data: dict[str, CorpusData],
    ag: AGInfo,
    tp: TrainParams,
    base: BaseParams,
    out_dir: Path,
) -> MethodContext:
    """The method's anchorings, the model config and the device."""
    device = resolve_device(tp.device, "train.device")
    shape = next(iter(data.values())).frames.shape[1:]
    if method == "la_cc" and len(shape) == 1:  # encoder layers: fail before any run starts
        check_top_m(tp.la_cc.top_m, tp.n_layers, "SER encoder (train.n_layers)")
    anchorings = _anchorings(method, data, ag, tp, base.seed, device)
    config = model_config(tp, shape, len(base.emotions))
    return MethodContext(data, anchorings, config, tp, base.emotions, device, out_dir)


def _summary(rows: list[dict], n_models: int, n_failed: int) -> dict[str, float]:
    """Stage metrics: models, failures and mean test UAR per direction and method (4-class
    models; a binary model's as ``test_uar.<direction>.<method>.binary_<emotion>``)."""
    frame = pd.DataFrame(rows)
    ok = frame[frame["status"] == "FINISHED"]
    metrics = {"n_models": n_models, "n_failed": n_failed}
    keys = ["direction", "method_dir", "task"]
    for (direction, method, task), part in ok.groupby(keys, sort=False):
        suffix = "" if task == MULTICLASS else f".{task}"
        metrics[f"test_uar.{direction}.{method}{suffix}"] = round(float(part["test_uar"].mean()), 4)
    return metrics


def run(
    inputs: Inputs,
    method: str,
    tp: TrainParams,
    base: BaseParams,
    common_threshold: float,
    out_dir: Path,
) -> pd.DataFrame:
    """Train one method's models; write their outputs, runs.csv and metrics.json; return runs."""
    out_dir = Path(out_dir).absolute()  # where every run writes, Ray workers elsewhere too
    # an unknown or unlisted method: a ConfigError before any work
    specs = method_runs(tp, method, base.emotions)
    params = {
        "method": method,
        "hyper": tp.hyper(method).model_dump(),
        "train": tp.model_dump(),
        "emotions": base.emotions,
        "seed": base.seed,
        "common_threshold": common_threshold,
    } | {k: str(v) for k, v in asdict(inputs).items()}
    with tracking.stage_run(
        "train",
        params=params,
        corpus=method,
        metrics_path=out_dir / "metrics.json",
        skips_path=out_dir / "skips.csv",
        max_skip_share=base.max_skip_share,
    ) as st:
        # nested runs inherit these tags; the engine is no DVC output (outputs do not depend on it)
        st.tags |= {"corpus": "", "method": method, "engine": tp.engine}
        st.set_tags(st.tags)
        log.info("%s: loading features, manifests, segments and AG clusters", method)
        data, ag = load_inputs(inputs, tp, method, base, st.skips, common_threshold)
        ctx = build_context(method, data, ag, tp, base, out_dir)
        configure_threads(ctx.device, tp.workers)
        log.info(
            "%s: training %d models on %s, engine %s (%d process(es) of %d thread(s))",
            method,
            len(specs),
            ctx.device,
            tp.engine,
            min(tp.workers, len(specs)),
            torch.get_num_threads(),
        )
        runs = _finish_runs(specs, ctx, st, method)
    return runs


def _finish_runs(
    specs: list[RunSpec], ctx: MethodContext, st: tracking.StageRun, method: str
) -> pd.DataFrame:
    """Train every run, write runs.csv, set the metrics; fail when a run failed."""
    rows, failed = run_method(specs, ctx, st)
    runs = pd.DataFrame(rows)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(ctx.out_dir / "runs.csv", index=False)
    st.log_artifact(ctx.out_dir / "runs.csv")
    st.metrics |= _summary(rows, len(specs), len(failed))
    uars = [v for k, v in st.metrics.items() if k.startswith("test_uar.") and k.endswith(method)]
    if uars:  # mean test UAR (%) of the method over its directions
        st.headline["uar"] = 100 * sum(uars) / len(uars)
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(specs)} {method} train runs failed: {failed}; "
            f"see the log and {ctx.out_dir / 'runs.csv'}"
        )
    return runs


def check_method_name(method: str, tp: TrainParams) -> None:
    """Fail with a ConfigError unless ``method`` is a known method listed in train.methods."""
    if method == "upper_bound":
        raise ConfigError(
            "upper_bound is not trained on its own: it is the source_only stage's model of the "
            "target corpus (train.upper_bound: true); run --method source_only"
        )
    tp.check_method(method)
