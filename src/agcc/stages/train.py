"""Stage ``train``: the SER model with AG anchoring and every baseline (docs/method.md section 7).

The grid is ``train.methods`` x ``train.directions`` x ``train.seeds``; one run trains one
:class:`agcc.models.SERModel` and predicts the direction's target TEST split. All methods share
one trainer (:mod:`agcc.training.trainer`), and a seed gives every method the same initial
weights; how each method anchors the corpora is :mod:`agcc.training.anchoring`, the batches are
:mod:`agcc.training.batches`. ``upper_bound`` trains within the direction's target corpus
(target train, early stopping on target val), the paper's C->C / I->I rows. ``train.oracle``
gives the triplet methods the true target labels: analysis only, and such runs say ORACLE in
their name, MLflow tags, folders and Table II rows.

Outputs under ``out_dir``: ``<source>_to_<target>/<method>[_ORACLE]/seed<k>/`` with
predictions.csv (utt_id, true, pred, prob_<emotion>...), model.pt
(:func:`agcc.io.checkpoint.load_checkpoint`), history.csv (per-epoch losses and validation UAR)
and confusion.png; runs.csv (one row per run) and skips.csv. Utterances without features are
skipped and counted (the stage fails loudly above ``base.max_skip_share`` before training);
NaN/inf features, a class missing from a training split and stale segments or clusters are
errors naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from agcc import tracking
from agcc.devices import resolve_device
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
    choose_layers,
    method_anchoring,
    vowel_distance,
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


# ---------------------------------------------------------------------------------------------
# The grid


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: a method in a direction with a seed."""

    method: str
    source: str
    target: str
    seed: int
    oracle: bool = False  # true target labels for the anchors (analysis only)

    @property
    def direction(self) -> str:
        """Folder name of the direction, ``<source>_to_<target>``."""
        return f"{self.source}_to_{self.target}"

    @property
    def method_dir(self) -> str:
        """The method's folder name, with ``_ORACLE`` when true target labels were used."""
        return self.method + (ORACLE_SUFFIX if self.oracle else "")

    @property
    def name(self) -> str:
        """Run name, e.g. ``ag_cc:demo_crema->demo_improv:seed1``."""
        return f"{self.method_dir}:{self.source}->{self.target}:seed{self.seed}"

    @property
    def train_corpus(self) -> str:
        """The labelled training corpus: the target for upper_bound, else the source."""
        return self.target if self.method == "upper_bound" else self.source

    def folder(self, out_dir: Path) -> Path:
        """``out_dir/<direction>/<method>[_ORACLE]/seed<k>``."""
        return out_dir / self.direction / self.method_dir / f"seed{self.seed}"


def grid(tp: TrainParams) -> list[RunSpec]:
    """Every method x direction x seed of the params, directions outermost."""
    return [
        RunSpec(m, s, t, seed, oracle=tp.oracle and m in TRIPLET_METHODS)
        for s, t in tp.directions
        for m in tp.methods
        for seed in tp.seeds
    ]


@dataclass
class GridContext:
    """Everything the runs of a grid share."""

    data: dict[str, CorpusData]
    anchorings: dict[tuple[str, str, str], Anchoring]  # (method, source, target)
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


def _layer_anchoring(
    spec: RunSpec, ctx: GridContext, model: SERModel, child: tracking.StageRun
) -> Anchoring:
    """la_cc: the run's anchored layers, chosen on the fresh model; similarities logged."""
    src, tgt = ctx.data[spec.train_corpus], ctx.data[spec.target]
    layers, sims = choose_layers(model, src, tgt, ctx.tp, spec.seed)
    child.log_metrics({f"layer_similarity.{i}": s for i, s in enumerate(sims)})
    log.info(
        "%s: anchored layers %s (similarity %s)", spec.name, layers, [round(s, 3) for s in sims]
    )
    return Anchoring("coral", layers=layers)


def _epoch_reporter(child: tracking.StageRun, bar: tqdm) -> EpochCallback:
    """An on_epoch callback logging the epoch to the run and showing it on the progress bar."""

    def on_epoch(stats: dict[str, float], epoch: int) -> None:
        """Log the epoch's stats as step ``epoch``; update the bar."""
        child.log_step(stats, epoch)
        bar.update(1)
        bar.set_postfix(val_uar=f"{stats['val_uar']:.3f}", loss_er=f"{stats['loss_er']:.3f}")

    return on_epoch


def train_one(spec: RunSpec, ctx: GridContext, child: tracking.StageRun) -> dict:
    """Train, early-stop, predict the target test split, write and log the run's outputs."""
    model = build_model(ctx.config, spec.seed, ctx.input_stats(spec.train_corpus), ctx.device)
    src, tgt = ctx.data[spec.train_corpus], ctx.data[spec.target]
    anchoring = ctx.anchorings[(spec.method, spec.source, spec.target)]
    if anchoring.kind == "coral":
        anchoring = _layer_anchoring(spec, ctx, model, child)
    second = tgt if anchoring.kind != "none" else None
    with tqdm(total=ctx.tp.max_epochs, desc="epochs", leave=False) as bar:
        result = fit(model, src, second, anchoring, ctx.tp, spec.seed, _epoch_reporter(child, bar))
    probs = predict(model, tgt, tgt.rows("test"), 2 * ctx.tp.batch_size)
    return _write_run(spec, ctx, child, model, result, probs, anchoring)


def _write_run(
    spec: RunSpec,
    ctx: GridContext,
    child: tracking.StageRun,
    model: SERModel,
    result: FitResult,
    probs: np.ndarray,
    anchoring: Anchoring,
) -> dict:
    """predictions.csv, model.pt, history.csv and confusion.png of a run; its runs.csv row."""
    folder, tgt = spec.folder(ctx.out_dir), ctx.data[spec.target]
    test = tgt.rows("test")
    write_predictions(
        folder / "predictions.csv", tgt.utt_ids[test], tgt.labels[test], probs, ctx.emotions
    )
    pd.DataFrame(result.history).to_csv(folder / "history.csv", index=False)
    meta = asdict(spec) | {
        "emotions": list(ctx.emotions),
        "best_epoch": result.best_epoch,
        "anchored_layers": list(anchoring.layers),
    }
    ckpt = save_checkpoint(folder / "model.pt", model, meta)
    n = len(ctx.emotions)
    cm = confusion_matrix(tgt.labels[test], probs.argmax(axis=1), n)
    test_uar = uar(tgt.labels[test], probs.argmax(axis=1), n)
    fig = plot_confusion(cm, ctx.emotions, f"{spec.name}: test UAR {test_uar:.3f}")
    fig.savefig(folder / "confusion.png", dpi=100)
    for path in (folder / "confusion.png", ckpt):
        child.log_artifact(path)
    child.log_metrics(
        {"test_uar": test_uar, "best_val_uar": result.best_val_uar, "best_epoch": result.best_epoch}
    )
    return asdict(spec) | {
        "direction": spec.direction,
        "method_dir": spec.method_dir,
        "status": "FINISHED",
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "val_uar": result.best_val_uar,
        "test_uar": test_uar,
        "predictions": str((folder / "predictions.csv").relative_to(ctx.out_dir)),
    }


def run_grid(
    specs: list[RunSpec], ctx: GridContext, stage: tracking.StageRun
) -> tuple[list[dict], list[str]]:
    """Every run as a nested MLflow run; a failed run is recorded and the others go on."""
    rows, failed = [], []
    for spec in tqdm(specs, desc="train runs"):
        t0 = time.perf_counter()
        params = asdict(spec) | {"direction": spec.direction, "train": ctx.tp.model_dump()}
        try:
            with stage.child(spec.name, params) as child:
                child.set_tags(
                    {
                        "method": spec.method_dir,
                        "direction": spec.direction,
                        "oracle": "ORACLE" if spec.oracle else "no",
                    }
                )
                row = train_one(spec, ctx, child)
                child.log_metrics({"seconds": time.perf_counter() - t0})
        except Exception:  # one broken run must not stop the grid; the stage fails at the end
            log.exception("train run %s failed", spec.name)
            failed.append(spec.name)
            row = asdict(spec) | {
                "direction": spec.direction,
                "method_dir": spec.method_dir,
                "status": "FAILED",
            }
        rows.append(row)  # no wall-clock time in DVC outputs: it goes to MLflow only
        log.info("%s: %s in %.1f s", spec.name, row["status"], time.perf_counter() - t0)
    return rows, failed


# ---------------------------------------------------------------------------------------------
# Stage


def load_inputs(
    inputs: Inputs, tp: TrainParams, base: BaseParams, skips: SkipReport, threshold: float
) -> tuple[dict[str, CorpusData], AGInfo]:
    """Every corpus of the directions, checked; and the AG model's k, distances and gamma."""
    model = load_model(inputs.cluster_dir / "model.npz")
    data = load_directions(
        inputs, tp.directions, tp.methods, model.k, base.emotions, skips, base.max_skip_share
    )
    return data, AGInfo.of(model, threshold)


def build_context(
    data: dict[str, CorpusData], ag: AGInfo, tp: TrainParams, base: BaseParams, out_dir: Path
) -> GridContext:
    """Anchorings of every method and direction, the model config and the device."""
    device = resolve_device(tp.device, "train.device")
    anchorings, vowel_d = {}, {}
    for src, tgt in tp.directions:
        pair = tuple(sorted((src, tgt)))
        if "hard_ag" in tp.methods and pair not in vowel_d:
            log.info("hard_ag: per-vowel barycentres of %s and %s", *pair)
            vowel_d[pair] = vowel_distance(
                [data[c] for c in pair], ag.gamma, base.seed, str(device)
            )
        direction_ag = dataclasses.replace(ag, vowel_distance=vowel_d.get(pair))
        for m in tp.methods:
            anchorings[(m, src, tgt)] = method_anchoring(
                m, data[src], data[tgt], direction_ag, tp.oracle, device
            )
    shape = next(iter(data.values())).frames.shape[1:]
    config = model_config(tp, shape, len(base.emotions))
    return GridContext(data, anchorings, config, tp, base.emotions, device, out_dir)


def _summary(rows: list[dict]) -> dict[str, float]:
    """Stage metrics: runs, failures and mean test UAR per direction and method."""
    frame = pd.DataFrame(rows)
    ok = frame[frame["status"] == "FINISHED"]
    metrics = {
        "n_runs": len(frame),
        "n_failed": int((frame["status"] == "FAILED").sum()),
    }
    for (direction, method), part in ok.groupby(["direction", "method_dir"], sort=False):
        metrics[f"test_uar.{direction}.{method}"] = round(float(part["test_uar"].mean()), 4)
    return metrics


def run(
    inputs: Inputs,
    tp: TrainParams,
    base: BaseParams,
    common_threshold: float,
    out_dir: Path,
    metrics_path: Path | None = None,
) -> pd.DataFrame:
    """Train the whole grid; write every run's outputs and ``runs.csv``; return the runs table."""
    out_dir = Path(out_dir)
    params = {
        "train": tp.model_dump(),
        "emotions": base.emotions,
        "seed": base.seed,
        "common_threshold": common_threshold,
    } | {k: str(v) for k, v in asdict(inputs).items()}
    with tracking.stage_run(
        "train",
        params=params,
        metrics_path=metrics_path,
        skips_path=out_dir / "skips.csv",
        max_skip_share=base.max_skip_share,
    ) as st:
        log.info("loading features, manifests, segments and AG clusters")
        data, ag = load_inputs(inputs, tp, base, st.skips, common_threshold)
        ctx = build_context(data, ag, tp, base, out_dir)
        configure_threads(ctx.device)
        specs = grid(tp)
        log.info(
            "training %d runs on %s (%d threads)", len(specs), ctx.device, torch.get_num_threads()
        )
        rows, failed = run_grid(specs, ctx, st)
        runs = pd.DataFrame(rows)
        runs.to_csv(out_dir / "runs.csv", index=False)
        st.log_artifact(out_dir / "runs.csv")
        st.metrics |= _summary(rows)
        if failed:
            raise RuntimeError(
                f"{len(failed)} of {len(specs)} train runs failed: {failed}; "
                f"see the log and {out_dir / 'runs.csv'}"
            )
    return runs
