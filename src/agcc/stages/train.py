"""Stage ``train``: the SER model with AG anchoring and every baseline (METHOD.md section 7).

The grid is ``train.methods`` x ``train.directions`` x ``train.seeds``; one run trains one
:class:`agcc.models.SERModel` and predicts the direction's target TEST split. All methods share
this trainer, and a seed gives every method the same initial weights.

* ``source_only``: L_ER, cross-entropy on the labelled source utterances.
* ``pa_cc`` (phoneme anchoring): L_ER + gamma * L_triplet, triplets grouped by vowel, w = 1.
* ``hard_ag``: triplets grouped by vowel, w = exp(-beta * Dv[v_a, v_n]) with Dv the soft-DTW
  divergence between per-vowel barycentres: the soft-DTW barycentre (SoftDTWKMeans, k = 1, the
  AG model's gamma) of each vowel's validation-split mouth segments of the direction's two
  corpora - fixed phone segments, no clustering (the paper's Hard-AG ablation).
* ``la_cc`` (layer anchoring): L_ER + gamma * sum over anchored encoder layers of
  CORAL(source, target) on the pooled layer outputs. Before training, each layer's pooled
  outputs on a probe batch are compared with :func:`agcc.losses.layer_similarity` (linear CKA)
  and the ``la_top_m`` MOST similar layers are anchored: as with AG-CC's common clusters and
  PA-CC's shared vowels, an anchor is what the corpora already share, and aligning through it
  pulls the rest of the representation along.
* ``ag_cc`` (the paper): anchors are target segments whose AG cluster is common (overlap o(i) >=
  ``analyze.common_threshold`` between the direction's source and target over all their
  segments, :mod:`agcc.analyze`); positive = a source segment of the same cluster and emotion,
  negative = a source segment of another cluster and the same emotion, w = exp(-beta *
  D[k_a, k_n]) with D the centroid divergences of ``model.npz``; L = L_ER + gamma * L_AG.
* ``upper_bound``: L_ER within the direction's target corpus (target train, early stopping on
  target val), the paper's C->C / I->I rows.

Each step takes ``batch_size`` labelled source utterances and ``batch_size`` unlabelled target
training utterances (the shuffled target list is cycled) in one forward pass; an epoch is one
pass over the source training utterances. Triplets are mined within the step: anchors are the
target segments, the pool is the step's source segments. An anchor's emotion is the pseudo-label
of its utterance, the current prediction of the same forward pass when its probability is at
least ``pseudo_label_threshold`` (no gradient through the label). ``train.oracle`` uses the true
target labels instead: analysis only, and such runs say ORACLE in their name, MLflow tags,
folders and Table II rows. A segment [seg_start, seg_end) (the span of its mouth segment) uses
feature frames floor(seg_start * rate) .. max(that + 1, ceil(seg_end * rate)), clipped to the
utterance. Inputs are standardised with the training corpus's frame statistics.

Adam (lr, weight_decay) for up to ``max_epochs``, early stopping with ``patience`` on the SOURCE
validation UAR (target labels never select a model), best weights restored.

Outputs under ``out_dir``: ``<source>_to_<target>/<method>[_ORACLE]/seed<k>/`` with
predictions.csv (utt_id, true, pred, prob_<emotion>...), model.pt (:func:`load_checkpoint`),
history.csv (per-epoch losses and validation UAR) and confusion.png; runs.csv (one row per run)
and skips.csv. Utterances without features are skipped and counted (the stage fails loudly
above ``base.max_skip_share`` before training); NaN/inf features, a class missing from a
training split and stale segments or clusters are errors naming the file.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.nn import functional as F
from tqdm import tqdm

from agcc import tracking
from agcc.corpora.base import read_manifest
from agcc.devices import resolve_device
from agcc.figures import plot_confusion
from agcc.framing import frame_range
from agcc.io.cluster_model import load_model, read_assignments
from agcc.io.features import read_features
from agcc.io.predictions import ORACLE_SUFFIX, write_predictions
from agcc.io.segments import load_segments
from agcc.losses import (
    coral,
    layer_similarity,
    mine_triplets,
    pseudo_label_mask,
    soft_triplet,
    soft_weights,
)
from agcc.models import SERConfig, SERModel, pool_segments
from agcc.overlap import cluster_shares, common_clusters, overlap
from agcc.params import VOWELS, BaseParams, TrainParams
from agcc.sdtw import centroid_series, pairwise_divergence
from agcc.skips import SkipReport
from agcc.stats import confusion_matrix, uar

log = logging.getLogger(__name__)

TRIPLET_METHODS = ("pa_cc", "hard_ag", "ag_cc")
#: Barycentre iterations (SoftDTWKMeans with k = 1) per vowel for hard_ag.
HARD_AG_MAX_ITER = 10
#: hard_ag: at most this many validation segments per vowel (seeded subsample) per barycentre.
HARD_AG_MAX_SERIES = 400


# ---------------------------------------------------------------------------------------------
# Input


@dataclass
class Segments:
    """Vowel segments of one corpus, sorted by utterance, as frame ranges of its features."""

    seg_id: np.ndarray  # (S,) str
    row: np.ndarray  # (S,) utterance row in the corpus
    lo: np.ndarray  # (S,) first feature frame
    hi: np.ndarray  # (S,) one past the last feature frame
    vowel: np.ndarray  # (S,) index into VOWELS
    cluster: np.ndarray  # (S,) AG cluster id
    ptr: np.ndarray  # (N + 1,) segments of utterance i are ptr[i]:ptr[i + 1]


@dataclass
class CorpusData:
    """One corpus's usable utterances, their features and segments."""

    name: str
    utt_ids: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) emotion index
    splits: np.ndarray  # (N,) str
    start: np.ndarray  # (N,) first row of the utterance in ``frames``
    length: np.ndarray  # (N,) frame count
    frames: np.ndarray  # (F, D) or (F, L, D), float16 as stored
    segments: Segments
    mouth_val: dict[int, list[np.ndarray]]  # vowel index -> val-split mouth series (T, 24)
    features_path: Path
    manifest_path: Path

    def rows(self, split: str) -> np.ndarray:
        """Utterance rows of one split."""
        return np.flatnonzero(self.splits == split)


def _usable_utterances(
    manifest: pd.DataFrame, utt_ids: np.ndarray, offsets: np.ndarray, path: Path, skips: SkipReport
) -> tuple[pd.DataFrame, np.ndarray]:
    """Manifest rows with at least one feature frame, and their index in the features file."""
    index = pd.Series(np.arange(len(utt_ids)), index=utt_ids)
    pos = index.reindex(manifest["utt_id"]).to_numpy()
    has = ~np.isnan(pos)
    has[has] = np.diff(offsets)[pos[has].astype(np.int64)] > 0
    skips.n_seen += len(manifest)
    for utt in manifest.loc[~has, "utt_id"]:
        skips.add(utt, path, "no features: the features file has no frames for this utterance")
    return manifest[has].reset_index(drop=True), pos[has].astype(np.int64)


def _segment_index(
    table: pd.DataFrame, utts: pd.DataFrame, length: np.ndarray, rate: float, seg_dir: Path
) -> Segments:
    """Segments of the usable utterances as frame ranges, sorted by utterance row."""
    row_of = pd.Series(np.arange(len(utts)), index=utts["utt_id"].to_numpy())
    row = row_of.reindex(table["utt_id"]).to_numpy()
    unknown = sorted(set(table["vowel"]) - set(VOWELS))
    if unknown:
        raise ValueError(f"{seg_dir}/segments.csv: unknown vowels {unknown}; expected {VOWELS}")
    keep = ~np.isnan(row)
    t, row = table[keep], row[keep].astype(np.int64)
    lo, hi, inside = frame_range(
        t["seg_start"].to_numpy(float), t["seg_end"].to_numpy(float), length[row], rate
    )
    if not inside.all():
        log.warning(
            "%s: %d segments start after their audio ends; not used", seg_dir, int((~inside).sum())
        )
        t, row, lo, hi = t[inside], row[inside], lo[inside], hi[inside]
    order = np.argsort(row, kind="stable")
    vowel = t["vowel"].map({v: i for i, v in enumerate(VOWELS)}).to_numpy(np.int64)
    return Segments(
        seg_id=t["seg_id"].to_numpy(str)[order],
        row=row[order],
        lo=lo[order],
        hi=hi[order],
        vowel=vowel[order],
        cluster=t["cluster"].to_numpy(np.int64)[order],
        ptr=np.searchsorted(row[order], np.arange(len(utts) + 1)),
    )


def _check_segment_utterances(table: pd.DataFrame, manifest: pd.DataFrame, seg_dir: Path) -> None:
    """Every segment must belong to an utterance of the manifest (else the stages are stale)."""
    stray = table.loc[~table["utt_id"].isin(manifest["utt_id"]), "utt_id"]
    if len(stray):
        raise ValueError(
            f"{seg_dir}/segments.csv: {stray.nunique()} utterances (e.g. {stray.iloc[0]!r}) are "
            "not in the manifest; re-run the segments stage"
        )


def load_corpus(
    name: str,
    feat_dir: Path,
    manifest_path: Path,
    seg_dir: Path,
    cluster_dir: Path,
    k: int,
    emotions: tuple[str, ...],
    skips: SkipReport,
) -> tuple[CorpusData, dict]:
    """One corpus: features, manifest labels and clustered segments, checked; and feature meta."""
    utt_ids, offsets, frames, meta = read_features(feat_dir)
    manifest = read_manifest(manifest_path)
    unknown = sorted(set(manifest["emotion"]) - set(emotions))
    if unknown:
        raise ValueError(f"{manifest_path}: emotions {unknown} are not in base.emotions {emotions}")
    utts, pos = _usable_utterances(manifest, utt_ids, offsets, feat_dir / "features.npz", skips)
    table, mouth = load_segments(seg_dir)
    _check_segment_utterances(table, manifest, seg_dir)
    table = read_assignments(cluster_dir, table, k)
    length = np.diff(offsets)[pos]
    segments = _segment_index(table, utts, length, float(meta.get("frame_rate", 50.0)), seg_dir)
    val = np.flatnonzero(table["split"].to_numpy() == "val")
    mouth_val: dict[int, list[np.ndarray]] = {}
    for i in val:
        mouth_val.setdefault(VOWELS.index(table["vowel"].iloc[i]), []).append(mouth[i])
    data = CorpusData(
        name=name,
        utt_ids=utts["utt_id"].to_numpy(str),
        labels=utts["emotion"].map({e: i for i, e in enumerate(emotions)}).to_numpy(np.int64),
        splits=utts["split"].to_numpy(str),
        start=offsets[pos],
        length=length,
        frames=frames,
        segments=segments,
        mouth_val=mouth_val,
        features_path=feat_dir / "features.npz",
        manifest_path=manifest_path,
    )
    return data, meta


def _require_classes(data: CorpusData, split: str, emotions: tuple[str, ...]) -> None:
    """Fail naming the corpus, split and missing class unless every emotion has utterances."""
    present = set(data.labels[data.rows(split)].tolist())
    missing = [e for i, e in enumerate(emotions) if i not in present]
    if missing:
        raise ValueError(
            f"corpus {data.name!r} ({data.manifest_path}): the {split} split has no utterances "
            f"with features for {missing}; a model trained on it needs every class of "
            f"base.emotions {list(emotions)}"
        )


def check_direction(
    src: CorpusData, tgt: CorpusData, methods: tuple[str, ...], emotions: tuple[str, ...]
) -> None:
    """The splits each method of a direction needs exist, with every class where it trains."""
    if any(m != "upper_bound" for m in methods):
        _require_classes(src, "train", emotions)
    if "upper_bound" in methods:
        _require_classes(tgt, "train", emotions)
    for data, split in ((src, "val"), (tgt, "val"), (tgt, "test"), (tgt, "train")):
        if not len(data.rows(split)):
            raise ValueError(
                f"corpus {data.name!r} ({data.manifest_path}): no {split} utterances with features"
            )
    if src.frames.shape[1:] != tgt.frames.shape[1:]:
        raise ValueError(
            f"feature shapes differ: {src.features_path} has frames {src.frames.shape[1:]}, "
            f"{tgt.features_path} {tgt.frames.shape[1:]}; extract both with the same encoder"
        )


# ---------------------------------------------------------------------------------------------
# Anchors


@dataclass(frozen=True)
class Anchoring:
    """How one method anchors the target corpus to the source corpus."""

    kind: str  # "none" | "triplet" | "coral"
    group: str = "vowel"  # triplet: "vowel" | "cluster"
    distance: Tensor | None = None  # (G, G): w = exp(-beta * D[g_a, g_n]); None: w = 1
    common: Tensor | None = None  # (k,) bool: AG clusters whose target segments may anchor
    oracle: bool = False  # triplet: true target labels instead of pseudo-labels (analysis only)
    layers: tuple[int, ...] = ()  # coral: anchored encoder layers


def common_cluster_mask(src: CorpusData, tgt: CorpusData, k: int, threshold: float) -> np.ndarray:
    """(k,) AG clusters common to two corpora: overlap o(i) >= threshold over all segments."""
    counts = np.stack([np.bincount(c.segments.cluster, minlength=k) for c in (src, tgt)])
    shares = cluster_shares(counts)  # (2, k)
    return common_clusters(overlap(shares[0], shares[1]), threshold)


def vowel_distance(corpora: list[CorpusData], gamma: float, seed: int, device: str) -> np.ndarray:
    """(6, 6) soft-DTW divergences between per-vowel barycentres of val-split mouth segments.

    Each vowel's barycentre is a Soft-DTW k-means with k = 1 over that vowel's validation mouth
    segments of all ``corpora`` (a seeded subsample of ``HARD_AG_MAX_SERIES`` when there are
    more). A vowel with fewer than 2 such segments gets distance 0 (w = 1) to every vowel, with
    a warning.
    """
    from agcc.sdtw import SoftDTWKMeans

    centres, present = [], []
    rng = np.random.default_rng(seed)
    for v, vowel in enumerate(tqdm(VOWELS, desc="hard_ag vowel barycentres", leave=False)):
        series = [s for c in corpora for s in c.mouth_val.get(v, [])]
        if len(series) > HARD_AG_MAX_SERIES:
            keep = np.sort(rng.choice(len(series), HARD_AG_MAX_SERIES, replace=False))
            series = [series[i] for i in keep]
        if len(series) < 2:
            log.warning(
                "hard_ag: %s has %d validation mouth segments; w = 1 for it", vowel, len(series)
            )
            continue
        km = SoftDTWKMeans(
            n_clusters=1, gamma=gamma, max_iter=HARD_AG_MAX_ITER, random_state=seed, device=device
        ).fit(series)
        centres.append(centroid_series(km.cluster_centers_)[0])
        present.append(v)
    out = np.zeros((len(VOWELS), len(VOWELS)))
    if len(centres) > 1:
        out[np.ix_(present, present)] = pairwise_divergence(centres, gamma, device)
    return out


def method_anchoring(
    method: str, src: CorpusData, tgt: CorpusData, ag: dict, tp: TrainParams, device: torch.device
) -> Anchoring:
    """The anchoring of a method in a direction (la_cc's layers are chosen per run)."""
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    if method in ("source_only", "upper_bound"):
        return Anchoring("none")
    if method == "la_cc":
        return Anchoring("coral")
    if method == "pa_cc":
        return Anchoring("triplet", "vowel", oracle=tp.oracle)
    if method == "hard_ag":
        return Anchoring("triplet", "vowel", as_t(ag["vowel_distance"]), oracle=tp.oracle)
    common = common_cluster_mask(src, tgt, ag["k"], ag["common_threshold"])
    log.info(
        "%s -> %s: %d of %d AG clusters are common (>= %g %% overlap)",
        src.name,
        tgt.name,
        int(common.sum()),
        ag["k"],
        ag["common_threshold"],
    )
    return Anchoring(
        "triplet",
        "cluster",
        as_t(ag["distance"]),
        torch.as_tensor(common, device=device),
        oracle=tp.oracle,
    )


# ---------------------------------------------------------------------------------------------
# Batches


@dataclass
class Batch:
    """Padded frames of one step's utterances and their segments; the source rows come first."""

    x: Tensor  # (B, T, D) or (B, T, L, D) float32, zero-padded
    lengths: Tensor  # (B,)
    labels: Tensor  # (B,) emotion index, -1 for unlabelled rows
    n_first: int  # rows [0, n_first) are from the first (source) corpus
    seg_row: Tensor  # (S,) batch row of each segment
    seg_lo: Tensor  # (S,)
    seg_hi: Tensor  # (S,)
    seg_vowel: Tensor  # (S,)
    seg_cluster: Tensor  # (S,)


def _segments_of(data: CorpusData, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment indices of utterance rows (vectorised CSR gather) and each one's position in rows."""
    ptr = data.segments.ptr
    counts = ptr[rows + 1] - ptr[rows]  # (R,)
    first = np.repeat(ptr[rows] - (np.cumsum(counts) - counts), counts)
    return first + np.arange(counts.sum()), np.repeat(np.arange(len(rows)), counts)


def make_batch(parts: list[tuple[CorpusData, np.ndarray, bool]], device: torch.device) -> Batch:
    """One batch from (corpus, utterance rows, labelled) parts, in order, padded to the longest."""
    lengths = np.concatenate([d.length[r] for d, r, _ in parts])
    feat = parts[0][0].frames.shape[1:]
    x = np.zeros((len(lengths), int(lengths.max()), *feat), dtype=np.float32)  # (B, T, ...)
    labels, segs, b = [], [], 0
    for data, rows, labelled in parts:
        for r in rows:
            x[b, : data.length[r]] = data.frames[data.start[r] : data.start[r] + data.length[r]]
            b += 1
        labels.append(data.labels[rows] if labelled else np.full(len(rows), -1))
        idx, pos = _segments_of(data, rows)
        s = data.segments
        segs.append((pos + b - len(rows), s.lo[idx], s.hi[idx], s.vowel[idx], s.cluster[idx]))
    seg = [
        torch.as_tensor(np.concatenate(col), dtype=torch.long, device=device)
        for col in zip(*segs, strict=True)
    ]
    return Batch(
        torch.from_numpy(x).to(device),
        torch.as_tensor(lengths, device=device),
        torch.as_tensor(np.concatenate(labels), dtype=torch.long, device=device),
        len(parts[0][1]),
        *seg,
    )


def _by_length(rows: np.ndarray, length: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows sorted by length times a random factor in [0.8, 1.25).

    Similar lengths end up together (little padding) while batch membership still changes from
    epoch to epoch.
    """
    key = length[rows] * rng.uniform(0.8, 1.25, len(rows))
    return rows[np.argsort(key, kind="stable")]


def epoch_batches(
    src: CorpusData,
    tgt: CorpusData | None,
    batch_size: int,
    rng: np.random.Generator,
    rng_tgt: np.random.Generator,
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """One epoch of (source rows, target rows) steps over the source training utterances.

    Every source training utterance once, in batches of ``batch_size`` (a last batch of 1 is
    dropped); with a target, ``batch_size`` target training utterances per step, drawn from a
    shuffled list cycled as often as needed. Batches group utterances of similar length
    (:func:`_by_length`), the k-th shortest source batch goes with the k-th shortest target
    batch (both share one padded forward pass), and the steps run in random order. The source
    batches and their order depend on ``rng`` only and the target draws on ``rng_tgt``, so every
    method of a seed sees the same source batches in the same order.
    """
    src_rows = _by_length(src.rows("train"), src.length, rng)
    n_steps = len(src_rows) // batch_size + (len(src_rows) % batch_size >= 2)
    steps_s = [src_rows[i * batch_size : (i + 1) * batch_size] for i in range(n_steps)]
    steps_t: list[np.ndarray | None] = [None] * n_steps
    if tgt is not None:
        pool = tgt.rows("train")
        reps = math.ceil(n_steps * batch_size / len(pool))
        drawn = np.concatenate([rng_tgt.permutation(pool) for _ in range(reps)])
        drawn = _by_length(drawn[: n_steps * batch_size], tgt.length, rng_tgt)
        steps_t = list(drawn.reshape(n_steps, batch_size))  # (steps, batch_size) -> rows
    steps_s.sort(key=lambda r: float(src.length[r].mean()))
    return [(steps_s[i], steps_t[i]) for i in rng.permutation(n_steps)]


# ---------------------------------------------------------------------------------------------
# Losses of one step


def triplet_term(
    out_logits: Tensor,
    h: Tensor,
    batch: Batch,
    anchoring: Anchoring,
    tp: TrainParams,
    generator: torch.Generator,
) -> tuple[Tensor, dict[str, float]]:
    """Soft triplet loss of the step's target-segment anchors against its source segments.

    Returns the loss (Eq. 2, mean over triplets), the number of triplets and the share of
    target utterances with a usable (confident, or oracle) label.
    """
    n = batch.n_first
    if anchoring.oracle:
        tgt_emotion, tgt_ok = batch.labels[n:], batch.labels[n:] >= 0
    else:
        probs = torch.softmax(out_logits[n:].detach(), dim=1)  # (B_t, C)
        tgt_emotion, tgt_ok = pseudo_label_mask(probs, tp.pseudo_label_threshold)
    emotion = torch.cat([batch.labels[:n], tgt_emotion])[batch.seg_row]  # (S,)
    ok = torch.cat([tgt_ok.new_ones(n), tgt_ok])[batch.seg_row]  # (S,)
    is_tgt = batch.seg_row >= n
    anchor_ok = is_tgt & ok
    if anchoring.common is not None:
        anchor_ok &= anchoring.common[batch.seg_cluster]
    groups = batch.seg_cluster if anchoring.group == "cluster" else batch.seg_vowel
    anc, pool = anchor_ok.nonzero().squeeze(1), (~is_tgt).nonzero().squeeze(1)
    a, p, ng = mine_triplets(groups[anc], emotion[anc], groups[pool], emotion[pool], generator)
    ia, ip, ineg = anc[a], pool[p], pool[ng]
    idx = torch.cat([ia, ip, ineg])
    z = pool_segments(h, batch.seg_row[idx], batch.seg_lo[idx], batch.seg_hi[idx])  # (3N, d)
    z_a, z_p, z_n = z.view(3, len(a), z.shape[1])  # (3, N, d); N may be 0
    w = 1.0
    if anchoring.distance is not None:
        w = soft_weights(anchoring.distance, groups[ia], groups[ineg], tp.beta)  # (N,)
    stats = {"n_triplets": float(len(a)), "labelled_share": tgt_ok.float().mean().item()}
    return soft_triplet(z_a, z_p, z_n, w, tp.alpha), stats


def coral_term(layer_pooled: Tensor, n_first: int, layers: tuple[int, ...]) -> Tensor:
    """Sum over the anchored layers of CORAL(source pooled outputs, target pooled outputs)."""
    terms = [coral(layer_pooled[i, :n_first], layer_pooled[i, n_first:]) for i in layers]
    return torch.stack(terms).sum() if terms else layer_pooled.sum() * 0.0


def step_loss(
    model: SERModel, batch: Batch, anchoring: Anchoring, tp: TrainParams, gen: torch.Generator
) -> tuple[Tensor, dict[str, float]]:
    """L = L_ER + gamma * L_anchor for one batch, with the terms as floats for logging."""
    out = model(batch.x, batch.lengths)
    n = batch.n_first
    loss_er = F.cross_entropy(out.logits[:n], batch.labels[:n])
    extra: dict[str, float] = {}
    if anchoring.kind == "triplet":
        loss_anchor, extra = triplet_term(out.logits, out.frames, batch, anchoring, tp, gen)
    elif anchoring.kind == "coral":
        loss_anchor = coral_term(out.layer_pooled, n, anchoring.layers)
    else:
        loss_anchor = loss_er.new_zeros(())
    loss = loss_er + tp.gamma * loss_anchor
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"non-finite loss: L_ER={loss_er.item()}, L_anchor={loss_anchor.item()}"
        )
    return loss, {"loss_er": loss_er.item(), "loss_anchor": loss_anchor.item()} | extra


# ---------------------------------------------------------------------------------------------
# Training and prediction


@dataclass
class FitResult:
    """Outcome of one training: best epoch and its source-validation UAR, per-epoch history."""

    best_epoch: int
    best_val_uar: float
    history: list[dict[str, float]] = field(default_factory=list)


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
) -> dict[str, float]:
    """One pass over the source training utterances; mean losses and triplets per step.

    ``rng`` draws the source batches, ``rng_tgt`` (default: ``rng``) the target ones.
    """
    model.train()
    device = next(model.parameters()).device
    totals: dict[str, float] = {}
    n_steps = 0
    for rows_s, rows_t in epoch_batches(src, tgt, tp.batch_size, rng, rng_tgt or rng):
        parts = [(src, rows_s, True)]
        if tgt is not None:
            parts.append((tgt, rows_t, anchoring.oracle))
        loss, stats = step_loss(model, make_batch(parts, device), anchoring, tp, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        totals = {k: totals.get(k, 0.0) + v for k, v in stats.items()}
        n_steps += 1
    return {k: v / max(n_steps, 1) for k, v in totals.items()}


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


def fit(
    model: SERModel,
    src: CorpusData,
    tgt: CorpusData | None,
    anchoring: Anchoring,
    tp: TrainParams,
    seed: int,
    on_epoch: Callable[[dict[str, float], int], None],
) -> FitResult:
    """Adam with early stopping on the validation UAR of ``src``; restores the best weights."""
    opt = torch.optim.Adam(model.parameters(), lr=tp.lr, weight_decay=tp.weight_decay)
    rng, rng_tgt = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    gen = torch.Generator().manual_seed(seed)
    val = src.rows("val")
    result, best_state, wait = FitResult(0, -math.inf), None, 0
    bar = tqdm(range(1, tp.max_epochs + 1), desc="epochs", leave=False)
    for epoch in bar:
        stats = train_epoch(model, opt, src, tgt, anchoring, tp, rng, gen, rng_tgt)
        probs = predict(model, src, val, 2 * tp.batch_size)
        stats["val_uar"] = uar(src.labels[val], probs.argmax(axis=1), model.config.n_classes)
        result.history.append({"epoch": epoch} | stats)
        on_epoch(stats, epoch)
        bar.set_postfix(val_uar=f"{stats['val_uar']:.3f}", loss_er=f"{stats['loss_er']:.3f}")
        if stats["val_uar"] > result.best_val_uar:
            result.best_epoch, result.best_val_uar, wait = epoch, stats["val_uar"], 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            wait += 1
            if wait >= tp.patience:
                break
    model.load_state_dict(best_state)
    return result


@torch.no_grad()
def choose_layers(
    model: SERModel, src: CorpusData, tgt: CorpusData, tp: TrainParams, seed: int
) -> tuple[tuple[int, ...], list[float]]:
    """la_cc: the ``la_top_m`` encoder layers most similar across corpora on a probe batch.

    The probe batch is ``batch_size`` random training utterances of each corpus, passed through
    the freshly initialised model in eval mode; similarity is :func:`layer_similarity`.
    """
    rng = np.random.default_rng([seed, 2])

    def pick(d: CorpusData) -> np.ndarray:
        return rng.choice(d.rows("train"), min(tp.batch_size, len(d.rows("train"))), replace=False)

    model.eval()
    device = next(model.parameters()).device
    batch = make_batch([(src, pick(src), False), (tgt, pick(tgt), False)], device)
    pooled = model(batch.x, batch.lengths).layer_pooled  # (n_layers, B, d)
    n = batch.n_first
    sims = [float(layer_similarity(pooled[i, :n], pooled[i, n:])) for i in range(len(pooled))]
    m = min(tp.la_top_m, len(sims))
    if m < tp.la_top_m:
        log.warning("la_cc: la_top_m=%d > %d encoder layers; anchoring all", tp.la_top_m, m)
    return tuple(sorted(int(i) for i in np.argsort(sims)[::-1][:m])), sims


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


# ---------------------------------------------------------------------------------------------
# Checkpoints and outputs


def save_checkpoint(path: Path, model: SERModel, meta: dict) -> Path:
    """Write the model's config, weights and run metadata (method, direction, seed, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"config": asdict(model.config), "state_dict": model.state_dict(), "meta": meta}, path
    )
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[SERModel, dict]:
    """Rebuild a model saved by :func:`save_checkpoint`; returns it (eval mode) and its meta."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint; run the train stage first")
    ckpt = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(ckpt, dict) or {"config", "state_dict", "meta"} - set(ckpt):
        raise ValueError(f"{path}: not an agcc checkpoint (needs config, state_dict and meta)")
    model = SERModel(SERConfig(**ckpt["config"])).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt["meta"]


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


def train_one(spec: RunSpec, ctx: GridContext, child: tracking.StageRun) -> dict:
    """Train, early-stop, predict the target test split, write and log the run's outputs."""
    torch.manual_seed(spec.seed)
    model = SERModel(ctx.config).to(ctx.device)
    model.set_input_stats(*(t.to(ctx.device) for t in ctx.input_stats(spec.train_corpus)))
    src, tgt = ctx.data[spec.train_corpus], ctx.data[spec.target]
    anchoring = ctx.anchorings[(spec.method, spec.source, spec.target)]
    if anchoring.kind == "coral":
        layers, sims = choose_layers(model, src, tgt, ctx.tp, spec.seed)
        anchoring = Anchoring("coral", layers=layers)
        child.log_metrics({f"layer_similarity.{i}": s for i, s in enumerate(sims)})
        log.info(
            "%s: anchored layers %s (similarity %s)", spec.name, layers, [round(s, 3) for s in sims]
        )
    second = tgt if anchoring.kind != "none" else None
    result = fit(model, src, second, anchoring, ctx.tp, spec.seed, child.log_step)
    test = tgt.rows("test")
    probs = predict(model, tgt, test, 2 * ctx.tp.batch_size)
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
        except Exception:  # one broken run must not stop the grid; the stage fails at the end
            log.exception("train run %s failed", spec.name)
            failed.append(spec.name)
            row = asdict(spec) | {
                "direction": spec.direction,
                "method_dir": spec.method_dir,
                "status": "FAILED",
            }
        rows.append(row | {"seconds": round(time.perf_counter() - t0, 2)})
        log.info("%s: %s in %.1f s", spec.name, row["status"], rows[-1]["seconds"])
    return rows, failed


# ---------------------------------------------------------------------------------------------
# Stage


def configure_threads(device: torch.device) -> None:
    """On CPU, use half the cores for torch (at least 1).

    The model is small, so intra-op threads gain little while they spin against every other
    process: on the shared 2-core machine a demo epoch took 12.5 s with 2 threads and 3.0 s
    with 1.
    """
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))


def model_config(tp: TrainParams, frame_shape: tuple[int, ...], n_classes: int) -> SERConfig:
    """The SER model's config from the params and the feature frame shape (D,) or (L, D)."""
    return SERConfig(
        input_dim=int(frame_shape[-1]),
        n_classes=n_classes,
        n_input_layers=int(frame_shape[0]) if len(frame_shape) == 2 else 1,
        d_model=tp.d_model,
        n_heads=tp.n_heads,
        n_layers=tp.n_layers,
        fc_hidden=tp.fc_hidden,
        dropout=tp.dropout,
    )


@dataclass(frozen=True)
class Inputs:
    """Where the train stage reads from."""

    features_root: Path
    segments_root: Path
    prepared_root: Path
    cluster_dir: Path


def load_inputs(
    inputs: Inputs, tp: TrainParams, base: BaseParams, skips: SkipReport, threshold: float
) -> tuple[dict[str, CorpusData], dict]:
    """Every corpus of the directions, checked; and the AG model's k, distances and gamma."""
    model = load_model(inputs.cluster_dir / "model.npz")
    names = list(dict.fromkeys(c for d in tp.directions for c in d))
    data = {}
    for name in tqdm(names, desc="load corpora"):
        data[name], _ = load_corpus(
            name,
            inputs.features_root / name,
            inputs.prepared_root / name / "manifest.csv",
            inputs.segments_root / name,
            inputs.cluster_dir,
            model.k,
            base.emotions,
            skips,
        )
        log.info(
            "%s: %d utterances with features, %d segments",
            name,
            len(data[name].utt_ids),
            len(data[name].segments.seg_id),
        )
    skips.check(base.max_skip_share)  # before any training, not after hours of it
    for src, tgt in tp.directions:
        check_direction(data[src], data[tgt], tp.methods, base.emotions)
    ag = {
        "k": model.k,
        "distance": model.distance,
        "gamma": model.gamma,
        "common_threshold": threshold,
    }
    return data, ag


def build_context(
    data: dict[str, CorpusData], ag: dict, tp: TrainParams, base: BaseParams, out_dir: Path
) -> GridContext:
    """Anchorings of every method and direction, the model config and the device."""
    device = resolve_device(tp.device, "train.device")
    anchorings, vowel_d = {}, {}
    for src, tgt in tp.directions:
        pair = tuple(sorted((src, tgt)))
        if "hard_ag" in tp.methods and pair not in vowel_d:
            log.info("hard_ag: per-vowel barycentres of %s and %s", *pair)
            vowel_d[pair] = vowel_distance(
                [data[c] for c in pair], ag["gamma"], base.seed, str(device)
            )
        ag["vowel_distance"] = vowel_d.get(pair)
        for m in tp.methods:
            anchorings[(m, src, tgt)] = method_anchoring(m, data[src], data[tgt], ag, tp, device)
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
        "seconds": round(float(frame["seconds"].sum()), 1),
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
