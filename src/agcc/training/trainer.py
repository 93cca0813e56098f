"""Build, train and apply one SER model in memory: no file paths, no tracking.

Each step takes ``batch_size`` labelled source utterances and ``batch_size`` unlabelled target
training utterances in one forward pass (:func:`agcc.training.batches.epoch_batches`); the loss
is L = L_ER + gamma * L_anchor (:mod:`agcc.training.anchoring`; gamma and the other
hyperparameters of a method travel on its :class:`~agcc.training.anchoring.Anchoring`). Adam
(lr, weight_decay) for up to ``max_epochs``, early stopping with ``patience`` on the SOURCE
validation UAR (target labels never select a model), best weights restored. la_cc on encoder
layers first trains ``train.la_cc.warmup_epochs`` source-only epochs, then chooses its layers
on the warmed-up model (:func:`agcc.training.anchoring.warmup_epochs`). Progress leaves
through ``on_epoch``.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from agcc.models import SERConfig, SERModel
from agcc.params import TrainParams
from agcc.stats import uar
from agcc.training.anchoring import (
    Anchoring,
    check_top_m,
    coral_inputs,
    coral_term,
    epoch_means,
    triplet_term,
    warmup_epochs,
    with_encoder_layers,
)
from agcc.training.batches import Batch, epoch_batches, make_batch
from agcc.training.data import CorpusData

#: on_epoch(stats of the epoch, epoch number from 1); keys it adds do not enter the history.
EpochCallback = Callable[[dict[str, float], int], None]


@dataclass
class FitResult:
    """Outcome of one training: best epoch and its source-validation UAR, per-epoch history.

    ``anchoring`` is the one the anchored epochs used (la_cc: with its chosen layers).
    """

    best_epoch: int
    best_val_uar: float
    history: list[dict[str, float]] = field(default_factory=list)
    anchoring: Anchoring | None = None


def configure_threads(device: torch.device, workers: int = 1) -> None:
    """On CPU, give torch the cores divided by max(2, ``workers``) (at least 1) per process.

    The model is small, so intra-op threads gain little while they spin against every other
    process: on the shared 2-core machine a demo epoch took 12.5 s with 2 threads and 3.0 s
    with 1; whole runs in parallel processes (``train.workers``) use the cores instead. One and
    two workers get the same thread count, so their results agree.
    """
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // max(2, workers)))


def model_config(tp: TrainParams, frame_shape: tuple[int, ...], n_classes: int) -> SERConfig:
    """The SER model's config from the params and the frame shape (D,) or (L, D); sinusoidal PE."""
    return SERConfig(
        input_dim=int(frame_shape[-1]),
        n_classes=n_classes,
        n_input_layers=int(frame_shape[0]) if len(frame_shape) == 2 else 1,
        d_model=tp.d_model,
        n_heads=tp.n_heads,
        n_layers=tp.n_layers,
        fc_hidden=tp.fc_hidden,
        dropout=tp.dropout,
        positional="sinusoidal",
        frame_stride=tp.frame_stride,
    )


def input_stats(data: CorpusData, rows: np.ndarray) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and std (D,) or (L, D) of the frames of ``rows`` (float64 sums)."""
    total = np.zeros(data.frames.shape[1:])
    sq = np.zeros(data.frames.shape[1:])
    n = 0
    for r in rows:
        f = data.frames[data.start[r] : data.start[r] + data.length[r]].astype(np.float64)
        total += f.sum(axis=0)
        sq += (f * f).sum(axis=0)
        n += len(f)
    mean = total / n
    std = np.sqrt(np.maximum(sq / n - mean**2, 0.0))
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)


def build_model(
    config: SERConfig, seed: int, stats: tuple[Tensor, Tensor], device: torch.device
) -> SERModel:
    """A fresh model: weights drawn after ``torch.manual_seed(seed)``, input statistics set."""
    torch.manual_seed(seed)
    model = SERModel(config).to(device)
    model.set_input_stats(*(t.to(device) for t in stats))
    return model


def balanced_class_weight(labels: np.ndarray, n_classes: int) -> Tensor:
    """Cross-entropy class weights n / (C * n_c) of ``labels`` (the source training split).

    The binary (one-vs-rest) models use them: with one emotion against three, an unweighted
    loss favours "rest", while Table II scores UAR, which weighs both classes equally.
    """
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        raise ValueError(f"a class has no training example: counts {counts.tolist()}")
    return torch.as_tensor(len(labels) / (n_classes * counts), dtype=torch.float32)


@torch.no_grad()
def target_probs(model: SERModel, batch: Batch) -> Tensor:
    """Class probabilities (B_t, C) of the batch's target rows in eval mode (dropout off)."""
    was_training = model.training
    model.eval()
    n = batch.n_first
    lengths = batch.lengths[n:]
    out = model(batch.x[n:, : int(lengths.max())], lengths)
    model.train(was_training)
    return torch.softmax(out.logits, dim=1)


def step_loss(
    model: SERModel,
    batch: Batch,
    anchoring: Anchoring,
    tp: TrainParams,
    gen: torch.Generator,
    class_weight: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """L = L_ER + gamma * L_anchor for one batch (gamma: the method's section on ``anchoring``).

    Triplet methods without oracle labels first take the target pseudo-labels from an eval-mode,
    no-grad pass (:func:`target_probs`), then run the training pass. ``class_weight`` (C,)
    weights the cross-entropy's classes (the binary models' balance; None: unweighted).
    """
    probs = None
    if anchoring.kind == "triplet" and not anchoring.oracle:
        probs = target_probs(model, batch)
    out = model(batch.x, batch.lengths)
    n = batch.n_first
    loss_er = F.cross_entropy(out.logits[:n], batch.labels[:n], weight=class_weight)
    extra: dict[str, float] = {}
    if anchoring.kind == "triplet":
        loss_anchor, extra = triplet_term(
            probs, out.frames, batch, anchoring, tp, gen, out.frame_stride
        )
    elif anchoring.kind == "coral":
        loss_anchor = coral_term(coral_inputs(out, anchoring), n, anchoring.layers)
        extra = {"coral": loss_anchor.item(), "gamma_coral": anchoring.gamma * loss_anchor.item()}
    else:
        loss_anchor = loss_er.new_zeros(())
    loss = loss_er + anchoring.gamma * loss_anchor
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"non-finite loss: L_ER={loss_er.item()}, L_anchor={loss_anchor.item()}"
        )
    return loss, {"loss_er": loss_er.item(), "loss_anchor": loss_anchor.item()} | extra


def train_epoch(
    model: SERModel,
    opt: torch.optim.Optimizer,
    src: CorpusData,
    tgt: CorpusData | None,
    anchoring: Anchoring,
    tp: TrainParams,
    rng: np.random.Generator,
    gen: torch.Generator,
    rng_tgt: np.random.Generator | None = None,
    class_weight: Tensor | None = None,
) -> dict[str, float]:
    """One pass over the source training utterances; per-step means of the step stats.

    ``rng`` draws the source batches, ``rng_tgt`` (default: ``rng``) the target ones. Triplet
    methods add anchors, triplets, common pairs, labelled shares and w's mean and std
    (:func:`agcc.training.anchoring.epoch_means`).
    """
    model.train()
    device = next(model.parameters()).device
    totals: dict[str, float] = {}
    n_steps = 0
    for rows_s, rows_t in epoch_batches(src, tgt, tp.batch_size, rng, rng_tgt or rng):
        parts = [(src, rows_s, True)]
        if tgt is not None:
            parts.append((tgt, rows_t, anchoring.oracle))
        batch = make_batch(parts, device)
        loss, stats = step_loss(model, batch, anchoring, tp, gen, class_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        totals = {k: totals.get(k, 0.0) + stats.get(k, 0.0) for k in {**totals, **stats}}
        n_steps += 1
    return epoch_means(totals, n_steps)


@torch.no_grad()
def predict(model: SERModel, data: CorpusData, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities (len(rows), C) in eval mode, batched by similar lengths."""
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort(data.length[rows], kind="stable")
    probs = np.zeros((len(rows), model.config.n_classes), dtype=np.float64)
    for s in range(0, len(rows), batch_size):
        sel = order[s : s + batch_size]
        batch = make_batch([(data, rows[sel], False)], device)
        probs[sel] = torch.softmax(model(batch.x, batch.lengths).logits, dim=1).cpu().numpy()
    return probs


#: The anchoring of source-only (warm-up) epochs.
NO_ANCHOR = Anchoring("none")


def _encoder_layers_pending(model: SERModel, anchoring: Anchoring) -> bool:
    """Whether fit must choose la_cc's encoder layers; checks train.la_cc.top_m if so."""
    if anchoring.kind != "coral" or anchoring.site != "encoder" or anchoring.layers:
        return False
    n_layers = model.config.n_layers
    check_top_m(int(anchoring.param("top_m")), n_layers, "SER encoder (train.n_layers)")
    return True


def fit(
    model: SERModel,
    src: CorpusData,
    tgt: CorpusData | None,
    anchoring: Anchoring,
    tp: TrainParams,
    seed: int,
    on_epoch: EpochCallback | None = None,
    class_weight: Tensor | None = None,
) -> FitResult:
    """Adam with early stopping on the validation UAR of ``src``; restores the best weights.

    ``tgt`` (None: source batches only) supplies the unlabelled target utterances of each step.
    la_cc on encoder layers first runs its warm-up: source-only epochs (no target, as
    source_only trains them), in the history with ``warmup`` = 1 but never chosen as the best
    model; then its layers are chosen and up to ``max_epochs`` anchored epochs follow.
    ``on_epoch(stats, epoch)`` sees each epoch's mean losses and ``val_uar`` before early
    stopping looks at them; it may raise to stop training (e.g. a pruned Optuna trial).
    ``class_weight`` weights the cross-entropy's classes (:func:`balanced_class_weight`).
    """
    pending = _encoder_layers_pending(model, anchoring)
    opt = torch.optim.Adam(model.parameters(), lr=tp.lr, weight_decay=tp.weight_decay)
    rng, rng_tgt = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    gen = torch.Generator().manual_seed(seed)
    val = src.rows("val")
    result, best_state, wait = FitResult(0, -math.inf), None, 0
    warm = warmup_epochs(anchoring)
    for epoch in range(1, warm + tp.max_epochs + 1):
        if pending and epoch == warm + 1:  # after the warm-up (warmup_epochs 0: fresh model)
            anchoring = with_encoder_layers(model, src, tgt, anchoring, tp)
        warming = epoch <= warm
        now, second = (NO_ANCHOR, None) if warming else (anchoring, tgt)
        stats = train_epoch(model, opt, src, second, now, tp, rng, gen, rng_tgt, class_weight)
        probs = predict(model, src, val, 2 * tp.batch_size)
        stats["val_uar"] = uar(src.labels[val], probs.argmax(axis=1), model.config.n_classes)
        if pending:
            stats["warmup"] = float(warming)
        result.history.append({"epoch": epoch} | stats)
        if on_epoch is not None:
            on_epoch(stats, epoch)
        if warming:
            continue
        if stats["val_uar"] > result.best_val_uar:
            result.best_epoch, result.best_val_uar, wait = epoch, stats["val_uar"], 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            wait += 1
            if wait >= tp.patience:
                break
    model.load_state_dict(best_state)
    result.anchoring = anchoring
    return result
