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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from agcc import tracking
from agcc.devices import resolve_device
from agcc.errors import ConfigError
from agcc.figures import plot_confusion
from agcc.io.checkpoint import save_checkpoint
from agcc.io.cluster_model import load_model
from agcc.io.corpus import Inputs, load_directions
from agcc.io.predictions import ORACLE_SUFFIX, write_predictions
from agcc.models import SERConfig, SERModel
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
    warmup_epochs,
)
from agcc.training.data import CorpusData
from agcc.training.trainer import (
    EpochCallback,
    FitResult,
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
        """Run name, e.g. ``ag_cc:demo_crema->demo_improv:seed1`` or ``source_only:c:seed1``."""
        where = self.source if self.target is None else f"{self.source}->{self.target}"
        return f"{self.method_dir}:{where}:seed{self.seed}"

    def folder(self, out_dir: Path) -> Path:
        """``out_dir/runs/<key>[_ORACLE]/seed<k>``."""
        suffix = ORACLE_SUFFIX if self.oracle else ""
        return out_dir / RUNS_DIR / f"{self.key}{suffix}" / f"seed{self.seed}"


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


def method_runs(tp: TrainParams, method: str) -> list[RunSpec]:
    """The models of one method: per (corpus, seed) for source_only, else per (direction, seed)."""
    tp.check_method(method)
    if method == "source_only":
        return [
            RunSpec(method, c, None, seed, serves=_source_only_serves(tp, c))
            for c in source_only_corpora(tp)
            for seed in tp.seeds
        ]
    oracle = tp.oracle and method in TRIPLET_METHODS
    return [
        RunSpec(method, s, t, seed, oracle, (Served(method, s, t),))
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


def _log_layers(spec: RunSpec, anchoring: Anchoring, child: tracking.StageRun) -> None:
    """la_cc: every layer's cross-corpus similarity and the anchored layers, to the run."""
    if anchoring.kind != "coral":
        return
    child.log_metrics({f"layer_similarity.{i}": s for i, s in enumerate(anchoring.similarity)})
    child.set_tags({"anchored_layers": f"{anchoring.site}:{list(anchoring.layers)}"})
    log.info(
        "%s: anchored %s layers %s (similarity %s)",
        spec.name,
        anchoring.site,
        anchoring.layers,
        [round(s, 3) for s in anchoring.similarity],
    )


def _epoch_reporter(child: tracking.StageRun, bar: tqdm) -> EpochCallback:
    """An on_epoch callback logging the epoch to the run and showing it on the progress bar."""

    def on_epoch(stats: dict[str, float], epoch: int) -> None:
        """Log the epoch's stats as step ``epoch``; update the bar."""
        child.log_step(stats, epoch)
        bar.update(1)
        bar.set_postfix(val_uar=f"{stats['val_uar']:.3f}", loss_er=f"{stats['loss_er']:.3f}")

    return on_epoch


def train_one(spec: RunSpec, ctx: MethodContext, child: tracking.StageRun) -> list[dict]:
    """Train and early-stop one model, predict every served target, write and log the outputs."""
    model = build_model(ctx.config, spec.seed, ctx.input_stats(spec.source), ctx.device)
    src = ctx.data[spec.source]
    anchoring = ctx.anchorings[(spec.source, spec.target)]
    second = ctx.data[spec.target] if anchoring.kind != "none" else None
    total = warmup_epochs(anchoring) + ctx.tp.max_epochs
    with tqdm(total=total, desc="epochs", leave=False) as bar:
        result = fit(model, src, second, anchoring, ctx.tp, spec.seed, _epoch_reporter(child, bar))
    anchoring = result.anchoring or anchoring
    _log_layers(spec, anchoring, child)
    folder = spec.folder(ctx.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(result.history).to_csv(folder / "history.csv", index=False)
    meta = asdict(spec) | {
        "serves": [asdict(s) for s in spec.serves],
        "emotions": list(ctx.emotions),
        "best_epoch": result.best_epoch,
        "anchored_layers": list(anchoring.layers),
        "anchored_site": anchoring.site if anchoring.kind == "coral" else "",
        "layer_similarity": list(anchoring.similarity),
        "hyper": anchoring.hyper.model_dump() if anchoring.hyper is not None else {},
    }
    child.log_artifact(save_checkpoint(folder / "model.pt", model, meta))
    child.log_metrics({"best_val_uar": result.best_val_uar, "best_epoch": result.best_epoch})
    tested = {t: _test_target(spec, ctx, child, model, t) for t in _targets(spec)}
    return [_row(spec, ctx, served, result, tested[served.target]) for served in spec.serves]


def _targets(spec: RunSpec) -> list[str]:
    """The distinct targets a run is tested on, in order."""
    return list(dict.fromkeys(s.target for s in spec.serves))


def _test_target(
    spec: RunSpec, ctx: MethodContext, child: tracking.StageRun, model: SERModel, target: str
) -> tuple[float, Path]:
    """predictions_<target>.csv and confusion_<target>.png of one target's test split."""
    tgt, folder = ctx.data[target], spec.folder(ctx.out_dir)
    test = tgt.rows("test")
    probs = predict(model, tgt, test, 2 * ctx.tp.batch_size)
    path = folder / f"predictions_{target}.csv"
    write_predictions(path, tgt.utt_ids[test], tgt.labels[test], probs, ctx.emotions)
    n = len(ctx.emotions)
    pred = probs.argmax(axis=1)
    test_uar = uar(tgt.labels[test], pred, n)
    cm = confusion_matrix(tgt.labels[test], pred, n)
    fig = plot_confusion(cm, ctx.emotions, f"{spec.name} on {target}: test UAR {test_uar:.3f}")
    fig.savefig(folder / f"confusion_{target}.png", dpi=100)
    child.log_artifact(folder / f"confusion_{target}.png")
    child.log_metrics({f"test_uar.{target}": test_uar})
    return test_uar, path


def _row(
    spec: RunSpec, ctx: MethodContext, served: Served, result: FitResult, tested: tuple
) -> dict:
    """The runs.csv row of one served target of a finished run."""
    test_uar, path = tested
    return _base_row(spec, served, "FINISHED") | {
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "val_uar": result.best_val_uar,
        "test_uar": test_uar,
        "predictions": str(path.relative_to(ctx.out_dir)),
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
        "oracle": oracle,
        "method_dir": served.method + (ORACLE_SUFFIX if oracle else ""),
        "seed": spec.seed,
        "model": spec.name,
        "status": status,
    }


def run_method(
    specs: list[RunSpec], ctx: MethodContext, stage: tracking.StageRun
) -> tuple[list[dict], list[str]]:
    """Every model as a nested MLflow run; a failed run is recorded and the others go on."""
    rows, failed = [], []
    for spec in tqdm(specs, desc="train runs"):
        t0 = time.perf_counter()
        params = asdict(spec) | {"train": ctx.tp.model_dump()}
        try:
            with stage.child(spec.name, params) as child:
                child.set_tags(
                    {
                        "method": spec.method_dir,
                        "train_corpus": spec.source,
                        "targets": " ".join(_targets(spec)),
                        "oracle": "ORACLE" if spec.oracle else "no",
                    }
                )
                new = train_one(spec, ctx, child)
                child.log_metrics({"seconds": time.perf_counter() - t0})
        except Exception:  # one broken run must not stop the others; the stage fails at the end
            log.exception("train run %s failed", spec.name)
            failed.append(spec.name)
            new = [_base_row(spec, served, "FAILED") for served in spec.serves]
        rows += new  # no wall-clock time in DVC outputs: it goes to MLflow only
        log.info("%s: %s in %.1f s", spec.name, new[0]["status"], time.perf_counter() - t0)
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
    """Stage metrics: models, failures and mean test UAR per direction and method."""
    frame = pd.DataFrame(rows)
    ok = frame[frame["status"] == "FINISHED"]
    metrics = {"n_models": n_models, "n_failed": n_failed}
    for (direction, method), part in ok.groupby(["direction", "method_dir"], sort=False):
        metrics[f"test_uar.{direction}.{method}"] = round(float(part["test_uar"].mean()), 4)
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
    out_dir = Path(out_dir)
    specs = method_runs(tp, method)  # unknown or unlisted method: ConfigError before any work
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
        st.tags |= {"corpus": "", "method": method}  # nested runs inherit these tags
        st.set_tags(st.tags)
        log.info("%s: loading features, manifests, segments and AG clusters", method)
        data, ag = load_inputs(inputs, tp, method, base, st.skips, common_threshold)
        ctx = build_context(method, data, ag, tp, base, out_dir)
        configure_threads(ctx.device)
        log.info(
            "%s: training %d models on %s (%d threads)",
            method,
            len(specs),
            ctx.device,
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
