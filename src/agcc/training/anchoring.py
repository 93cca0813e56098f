"""How each method anchors the target corpus to the source corpus (docs/method.md section 7).

* ``source_only`` / ``upper_bound``: L_ER, cross-entropy on the labelled training utterances.
* ``pa_cc`` (phoneme anchoring): L_ER + gamma * L_triplet, triplets grouped by vowel, w = 1.
* ``hard_ag``: triplets grouped by vowel, w = exp(-beta * Dv[v_a, v_n]) with Dv the soft-DTW
  divergence between per-vowel barycentres: the soft-DTW barycentre (SoftDTWKMeans, k = 1, the
  AG model's gamma) of each vowel's validation-split mouth segments of the direction's two
  corpora - fixed phone segments, no clustering (the paper's Hard-AG ablation).
* ``la_cc`` (layer anchoring, Upadhyay, Busso and Lee 2024): L_ER + gamma * sum over the
  anchored layers of CORAL(source, target) on utterance-pooled layer representations. Each
  layer's two corpora are compared with :func:`agcc.losses.layer_similarity` (linear CKA of
  their covariance structures) and the ``top_m`` MOST similar layers are anchored (``top_m``
  must be smaller than the layers available, :func:`check_top_m`). With all-layer features
  (frames (F, L, D), ``features.layer: all``) the layers are the frozen upstream model's,
  chosen before training on the train splits' pooled frozen features
  (:func:`choose_input_layers`), and CORAL applies to those layers as they enter the SER
  model: standardised, pooled and passed through the shared input projection
  (:attr:`agcc.models.SEROutput.input_pooled`). With single-layer features the layers are the
  SER encoder's, chosen after ``warmup_epochs`` source-only epochs (:func:`choose_layers`).
* ``ag_cc`` (the paper): anchors are target segments whose (vowel, AG cluster) pair is common
  (Table I per vowel: overlap o(i) >= ``analyze.common_threshold`` between the direction's
  source and target shares of that vowel's train and val segments, :mod:`agcc.overlap`; test
  segments never count); positive = a source segment of the same cluster and emotion, negative
  = a source segment of another cluster and the same emotion, of any vowel; w = exp(-beta *
  D[k_a, k_n]) with D the AG centroid divergences; L = L_ER + gamma * L_AG.

Triplets are mined within a step: anchors are the step's target segments, the pool its source
segments. An anchor's emotion is the pseudo-label of its utterance, the current model's
prediction from an eval-mode (dropout off), no-grad forward pass over the step's target
utterances when its probability is at least ``pseudo_label_threshold``, or the true label with
``train.oracle`` (analysis only).

:data:`METHODS` is the one registry of methods; :func:`method_anchoring` looks a name up in it
and attaches the method's own hyperparameters (its ``train.<method>`` section: gamma, and alpha,
beta or top_m where the method uses them) to the :class:`Anchoring` the trainer reads.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from agcc.errors import ConfigError
from agcc.losses import (
    coral,
    layer_similarity,
    mine_triplets,
    pseudo_label_mask,
    soft_triplet,
    soft_weights,
)
from agcc.models import SERModel, SEROutput, pool_segments, stride_span
from agcc.overlap import cluster_shares, common_clusters, overlap
from agcc.params import METHOD_SECTIONS, VOWELS, MethodParams, TrainParams
from agcc.sdtw import centroid_series, pairwise_divergence
from agcc.training.batches import Batch, make_batch
from agcc.training.data import CorpusData

log = logging.getLogger(__name__)

#: Barycentre iterations (SoftDTWKMeans with k = 1) per vowel for hard_ag.
HARD_AG_MAX_ITER = 10
#: hard_ag: at most this many validation segments per vowel (seeded subsample) per barycentre.
HARD_AG_MAX_SERIES = 400


@dataclass(frozen=True)
class Anchoring:
    """How one method anchors the target corpus to the source corpus."""

    kind: str  # "none" | "triplet" | "coral"
    group: str = "vowel"  # triplet: "vowel" | "cluster"
    distance: Tensor | None = None  # (G, G): w = exp(-beta * D[g_a, g_n]); None: w = 1
    common: Tensor | None = None  # (6, k) bool: (vowel, AG cluster) pairs whose segments anchor
    oracle: bool = False  # triplet: true target labels instead of pseudo-labels (analysis only)
    layers: tuple[int, ...] = ()  # coral: anchored layers (of ``site``)
    site: str = "encoder"  # coral: "encoder" (SER encoder layers) | "input" (upstream layers)
    similarity: tuple[float, ...] = ()  # coral: every layer's cross-corpus similarity
    hyper: MethodParams | None = None  # the method's train.<method> section (gamma, alpha...)

    @property
    def gamma(self) -> float:
        """Weight of the anchoring loss: the section's gamma (0 for methods without one)."""
        return float(getattr(self.hyper, "gamma", 0.0))

    def param(self, name: str) -> float:
        """A hyperparameter of the method's section; a ConfigError when the section lacks it."""
        if not hasattr(self.hyper, name):
            raise ConfigError(
                f"{self.kind} anchoring needs {name!r} from its method's train section, got "
                f"{type(self.hyper).__name__ if self.hyper is not None else 'no section'}"
            )
        return getattr(self.hyper, name)


class _AGModelLike(Protocol):
    """The parts of an AG model (:class:`agcc.io.cluster_model.AGModel`) anchoring needs."""

    k: int
    distance: np.ndarray
    gamma: float


@dataclass(frozen=True)
class AGInfo:
    """What the anchoring methods need from the AG model and the params of one direction."""

    k: int  # AG clusters
    distance: np.ndarray  # (k, k) soft-DTW divergences between the AG centroids
    gamma: float  # the AG model's soft-DTW gamma (also hard_ag's barycentres)
    common_threshold: float  # overlap o(i) in percent from which a cluster is common
    vowel_distance: np.ndarray | None = None  # (6, 6) hard_ag's Dv of the direction's corpora

    @classmethod
    def of(cls, model: _AGModelLike, common_threshold: float) -> AGInfo:
        """The AG information of a loaded AG model with ``analyze.common_threshold``."""
        return cls(model.k, model.distance, model.gamma, common_threshold)


#: Splits whose segments decide the common (vowel, cluster) pairs: never the test split.
COMMON_SPLITS = ("train", "val")


def pair_counts(data: CorpusData, k: int) -> np.ndarray:
    """(6, k) segment counts per (vowel, AG cluster) over the train and val utterances only."""
    seg = data.segments
    keep = np.isin(data.splits[seg.row], COMMON_SPLITS)
    flat = seg.vowel[keep] * k + seg.cluster[keep]
    return np.bincount(flat, minlength=len(VOWELS) * k).reshape(len(VOWELS), k)


def common_pair_mask(src: CorpusData, tgt: CorpusData, k: int, threshold: float) -> np.ndarray:
    """(6, k) common (vowel, AG cluster) pairs, Table I per vowel, from train and val segments.

    For each vowel, o(i) compares the two corpora's shares of that vowel's segments over the
    clusters (:func:`agcc.overlap.overlap`); a pair is common when o(i) >= ``threshold``. The
    test split's segments take no part, so the target test data never shape training.
    """
    counts = np.stack([pair_counts(src, k), pair_counts(tgt, k)], axis=1)  # (6, 2, k)
    out = np.zeros((len(VOWELS), k), dtype=bool)
    for v in range(len(VOWELS)):
        shares = cluster_shares(counts[v])  # (2, k)
        out[v] = common_clusters(overlap(shares[0], shares[1]), threshold)
    return out


def _vowel_series(corpora: list[CorpusData], v: int, rng: np.random.Generator) -> list:
    """Validation mouth series of vowel v over ``corpora``, a seeded subsample if too many."""
    series = [s for c in corpora for s in c.mouth_val.get(v, [])]
    if len(series) > HARD_AG_MAX_SERIES:
        keep = np.sort(rng.choice(len(series), HARD_AG_MAX_SERIES, replace=False))
        series = [series[i] for i in keep]
    return series


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
        series = _vowel_series(corpora, v, rng)
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


# ---------------------------------------------------------------------------------------------
# The method registry

#: builder(source, target, AG information, oracle, device) -> the method's Anchoring.
Builder = Callable[[CorpusData, CorpusData, AGInfo, bool, torch.device], Anchoring]


def _as_tensor(a: np.ndarray, device: torch.device) -> Tensor:
    """A float32 tensor on ``device``."""
    return torch.as_tensor(a, dtype=torch.float32, device=device)


def _no_anchor(
    src: CorpusData, tgt: CorpusData, ag: AGInfo, oracle: bool, device: torch.device
) -> Anchoring:
    """source_only and upper_bound: L = L_ER."""
    return Anchoring("none")


def _layer_anchor(
    src: CorpusData, tgt: CorpusData, ag: AGInfo, oracle: bool, device: torch.device
) -> Anchoring:
    """la_cc: CORAL on the upstream layers with (F, L, D) frames, else on encoder layers."""
    return Anchoring("coral", site="input" if src.frames.ndim == 3 else "encoder")


def _phoneme_anchor(
    src: CorpusData, tgt: CorpusData, ag: AGInfo, oracle: bool, device: torch.device
) -> Anchoring:
    """pa_cc: triplets grouped by vowel, w = 1."""
    return Anchoring("triplet", "vowel", oracle=oracle)


def _hard_ag_anchor(
    src: CorpusData, tgt: CorpusData, ag: AGInfo, oracle: bool, device: torch.device
) -> Anchoring:
    """hard_ag: triplets grouped by vowel, weighted by the per-vowel barycentre divergences."""
    if ag.vowel_distance is None:
        raise ValueError("hard_ag needs AGInfo.vowel_distance (see vowel_distance)")
    return Anchoring("triplet", "vowel", _as_tensor(ag.vowel_distance, device), oracle=oracle)


def _ag_anchor(
    src: CorpusData, tgt: CorpusData, ag: AGInfo, oracle: bool, device: torch.device
) -> Anchoring:
    """ag_cc: triplets grouped by AG cluster, anchors in common clusters, AG-distance weights."""
    common = common_pair_mask(src, tgt, ag.k, ag.common_threshold)
    log.info(
        "%s -> %s: %d of %d (vowel, AG cluster) pairs are common (>= %g %% overlap, train+val)",
        src.name,
        tgt.name,
        int(common.sum()),
        common.size,
        ag.common_threshold,
    )
    return Anchoring(
        "triplet",
        "cluster",
        _as_tensor(ag.distance, device),
        torch.as_tensor(common, device=device),
        oracle=oracle,
    )


#: Every method of ``train.methods`` and how it anchors.
METHODS: dict[str, Builder] = {
    "source_only": _no_anchor,
    "pa_cc": _phoneme_anchor,
    "hard_ag": _hard_ag_anchor,
    "la_cc": _layer_anchor,
    "ag_cc": _ag_anchor,
    "upper_bound": _no_anchor,
}
#: Methods whose anchors carry (pseudo-)labels, i.e. those ``train.oracle`` applies to.
TRIPLET_METHODS = ("pa_cc", "hard_ag", "ag_cc")


def method_builder(method: str) -> Builder:
    """The registry entry of a method; an unknown name is a ConfigError naming the known ones."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; known methods: {list(METHODS)}")
    return METHODS[method]


def method_anchoring(
    method: str,
    src: CorpusData,
    tgt: CorpusData,
    ag: AGInfo,
    oracle: bool,
    device: torch.device,
    hyper: MethodParams,
) -> Anchoring:
    """The anchoring of a method in a direction with the method's own section ``hyper``.

    la_cc's upstream layers (all-layer features) are chosen here, once per direction; its
    encoder layers are chosen in each run after the warm-up (:func:`warmup_epochs`). ``hyper``
    must be the method's ``train.<method>`` section
    (:meth:`agcc.params.TrainParams.hyper`); another section is a ConfigError.
    """
    builder = method_builder(method)
    expected = METHOD_SECTIONS["source_only" if method == "upper_bound" else method]
    if not isinstance(hyper, expected):
        raise ConfigError(
            f"method {method!r} needs its train.{method} section ({expected.__name__}), got "
            f"{type(hyper).__name__ if hyper is not None else 'none'}"
        )
    anchoring = builder(src, tgt, ag, oracle and method in TRIPLET_METHODS, device)
    anchoring = dataclasses.replace(anchoring, hyper=hyper)
    if anchoring.kind == "coral" and anchoring.site == "input":
        top_m = int(anchoring.param("top_m"))
        layers, sims = choose_input_layers(src, tgt, top_m)
        log.info(
            "la_cc %s -> %s: anchored upstream layers %s (similarity %s)",
            src.name,
            tgt.name,
            layers,
            [round(x, 3) for x in sims],
        )
        anchoring = dataclasses.replace(anchoring, layers=layers, similarity=tuple(sims))
    return anchoring


# ---------------------------------------------------------------------------------------------
# Anchoring terms of one step


def triplet_candidates(
    batch: Batch, anchoring: Anchoring, tgt_emotion: Tensor, tgt_ok: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Which segments may anchor and which form the pool, with every segment's group and emotion.

    Anchors: target segments whose utterance has a usable label (``tgt_ok``) and, with
    ``anchoring.common``, whose (vowel, AG cluster) pair is common; pool: every source segment
    (a positive or negative need not share the anchor's vowel: AG clusters span vowels).
    Returns the anchor and pool segment indices and the (S,) group (vowel or cluster) and
    emotion.
    """
    n = batch.n_first
    emotion = torch.cat([batch.labels[:n], tgt_emotion])[batch.seg_row]  # (S,)
    ok = torch.cat([tgt_ok.new_ones(n), tgt_ok])[batch.seg_row]  # (S,)
    is_tgt = batch.seg_row >= n
    anchor_ok = is_tgt & ok
    if anchoring.common is not None:
        anchor_ok &= anchoring.common[batch.seg_vowel, batch.seg_cluster]
    groups = batch.seg_cluster if anchoring.group == "cluster" else batch.seg_vowel
    anc, pool = anchor_ok.nonzero().squeeze(1), (~is_tgt).nonzero().squeeze(1)
    return anc, pool, groups, emotion


def target_pseudo_labels(
    tgt_probs: Tensor | None, batch: Batch, anchoring: Anchoring, tp: TrainParams
) -> tuple[Tensor, Tensor]:
    """Each target utterance's emotion (B_t,) and whether it is usable (B_t,) bool.

    Pseudo-labels: the argmax of ``tgt_probs`` (eval-mode probabilities, no gradient), usable
    when at least ``pseudo_label_threshold``; with ``anchoring.oracle`` the true labels.
    """
    n = batch.n_first
    if anchoring.oracle:
        return batch.labels[n:], batch.labels[n:] >= 0
    if tgt_probs is None:
        raise ValueError("triplet anchoring without oracle labels needs the target probabilities")
    return pseudo_label_mask(tgt_probs, tp.pseudo_label_threshold)


def triplet_term(
    tgt_probs: Tensor | None,
    h: Tensor,
    batch: Batch,
    anchoring: Anchoring,
    tp: TrainParams,
    generator: torch.Generator,
    stride: int = 1,
) -> tuple[Tensor, dict[str, float]]:
    """Soft triplet loss of the step's target-segment anchors against its source segments.

    ``h`` (B, T', d) are the encoder's frames, ``stride`` input frames each (the model's
    ``frame_stride``): segments pool the strided frames they touch.

    ``tgt_probs`` (B_t, C) are the target utterances' class probabilities from an eval-mode,
    no-grad pass (:func:`target_pseudo_labels`); ignored with ``anchoring.oracle``. The margin
    alpha and weight scale beta come from ``anchoring.hyper``. Returns the loss (Eq. 2, mean
    over triplets) and the step's counts (:func:`_triplet_stats`).
    """
    tgt_emotion, tgt_ok = target_pseudo_labels(tgt_probs, batch, anchoring, tp)
    anc, pool, groups, emotion = triplet_candidates(batch, anchoring, tgt_emotion, tgt_ok)
    a, p, ng = mine_triplets(groups[anc], emotion[anc], groups[pool], emotion[pool], generator)
    ia, ip, ineg = anc[a], pool[p], pool[ng]
    idx = torch.cat([ia, ip, ineg])
    lo, hi = stride_span(batch.seg_lo[idx], batch.seg_hi[idx], stride)
    z = pool_segments(h, batch.seg_row[idx], lo, hi)  # (3N, d)
    z_a, z_p, z_n = z.view(3, len(a), z.shape[1])  # (3, N, d); N may be 0
    w = z.new_ones(len(a))
    if anchoring.distance is not None:
        w = soft_weights(anchoring.distance, groups[ia], groups[ineg], anchoring.param("beta"))
    stats = _triplet_stats(batch, anchoring, tgt_ok, len(anc), w)
    return soft_triplet(z_a, z_p, z_n, w, anchoring.param("alpha")), stats


def _triplet_stats(
    batch: Batch, anchoring: Anchoring, tgt_ok: Tensor, n_anchors: int, w: Tensor
) -> dict[str, float]:
    """A step's anchoring counts: anchors, triplets, sums of w and w^2, labelled shares.

    ``labelled_share`` is over the target utterances, ``labelled_segment_share`` over their
    segments (a pseudo-label at or above the threshold, or an oracle label); with common pairs,
    ``n_common_pairs`` is their number. The trainer turns the sums into the epoch's mean and
    std of w (:func:`epoch_means`).
    """
    is_tgt = batch.seg_row >= batch.n_first
    seg_ok = tgt_ok[batch.seg_row[is_tgt] - batch.n_first].float()
    stats = {
        "n_anchors": float(n_anchors),
        "n_triplets": float(len(w)),
        "w_sum": float(w.detach().sum()),
        "w_sumsq": float((w.detach() ** 2).sum()),
        "labelled_share": tgt_ok.float().mean().item() if len(tgt_ok) else 0.0,
        "labelled_segment_share": seg_ok.mean().item() if len(seg_ok) else 0.0,
    }
    if anchoring.common is not None:
        stats["n_common_pairs"] = float(anchoring.common.sum())
    return stats


def epoch_means(totals: dict[str, float], n_steps: int) -> dict[str, float]:
    """Per-step means of summed step stats; w's sums become the epoch's mean and std of w.

    ``w_mean`` and ``w_std`` are over every triplet of the epoch and absent when it had none.
    """
    out = {k: v / max(n_steps, 1) for k, v in totals.items() if k not in ("w_sum", "w_sumsq")}
    n = totals.get("n_triplets", 0.0)
    if "w_sum" in totals and n > 0:
        mean = totals["w_sum"] / n
        out["w_mean"] = mean
        out["w_std"] = math.sqrt(max(totals["w_sumsq"] / n - mean * mean, 0.0))
    return out


def coral_term(layer_pooled: Tensor, n_first: int, layers: tuple[int, ...]) -> Tensor:
    """Sum over the anchored layers of CORAL(source pooled outputs, target pooled outputs).

    ``layer_pooled`` is (n_layers, B, d) with the source utterances in the first ``n_first``
    rows of B (:func:`coral_inputs` picks it from a forward pass).
    """
    terms = [coral(layer_pooled[i, :n_first], layer_pooled[i, n_first:]) for i in layers]
    return torch.stack(terms).sum() if terms else layer_pooled.sum() * 0.0


def coral_inputs(out: SEROutput, anchoring: Anchoring) -> Tensor:
    """The pooled layers CORAL applies to: the input layers' (site "input") or the encoder's."""
    if anchoring.site == "input":
        if out.input_pooled is None:
            raise ValueError("la_cc on upstream layers needs all-layer (B, T, L, D) inputs")
        return out.input_pooled
    return out.layer_pooled


def check_top_m(top_m: int, n_layers: int, what: str) -> None:
    """A ConfigError unless train.la_cc.top_m < ``n_layers`` (anchoring all selects nothing)."""
    if top_m >= n_layers:
        raise ConfigError(
            f"train.la_cc.top_m = {top_m} must be smaller than the {n_layers} {what} layers "
            f"available: anchoring every layer selects none (choose 1..{n_layers - 1})"
        )


def top_layers(sims: list[float], top_m: int) -> tuple[int, ...]:
    """The indices of the ``top_m`` largest similarities, ascending; ties: the lower index."""
    order = sorted(range(len(sims)), key=lambda i: (-sims[i], i))
    return tuple(sorted(order[:top_m]))


def utterance_means(data: CorpusData, rows: np.ndarray) -> np.ndarray:
    """(len(rows), *frame shape) float64 mean frame of each utterance of ``rows``."""
    out = np.zeros((len(rows), *data.frames.shape[1:]))
    for j, r in enumerate(rows):
        out[j] = data.frames[data.start[r] : data.start[r] + data.length[r]].mean(
            axis=0, dtype=np.float64
        )
    return out


def choose_input_layers(
    src: CorpusData, tgt: CorpusData, top_m: int
) -> tuple[tuple[int, ...], list[float]]:
    """la_cc with (F, L, D) frames: the ``top_m`` upstream layers most similar across corpora.

    Before any training: each utterance of the two ``train`` splits is the mean of its frozen
    frames per layer, and each layer's similarity is :func:`layer_similarity` of the two
    corpora's (n, D) means. ``top_m`` must be smaller than L (:func:`check_top_m`).
    """
    n_layers = src.frames.shape[1]
    check_top_m(top_m, n_layers, "upstream (features.layer: all)")
    a = torch.as_tensor(utterance_means(src, src.rows("train")))  # (n_s, L, D)
    b = torch.as_tensor(utterance_means(tgt, tgt.rows("train")))  # (n_t, L, D)
    sims = [float(layer_similarity(a[:, i], b[:, i])) for i in range(n_layers)]
    return top_layers(sims, top_m), sims


def warmup_epochs(anchoring: Anchoring) -> int:
    """Source-only epochs before la_cc chooses encoder layers; 0 for every other case."""
    if anchoring.kind != "coral" or anchoring.site != "encoder" or anchoring.layers:
        return 0
    return int(anchoring.param("warmup_epochs"))


@torch.no_grad()
def pooled_layers(model: SERModel, data: CorpusData, rows: np.ndarray, batch_size: int) -> Tensor:
    """(n_layers, len(rows), d) pooled encoder-layer outputs in eval mode, batched."""
    device = next(model.parameters()).device
    parts = []
    for s in range(0, len(rows), batch_size):
        batch = make_batch([(data, rows[s : s + batch_size], False)], device)
        parts.append(model(batch.x, batch.lengths).layer_pooled)
    return torch.cat(parts, dim=1)


def choose_layers(
    model: SERModel, src: CorpusData, tgt: CorpusData, tp: TrainParams, top_m: int
) -> tuple[tuple[int, ...], list[float]]:
    """la_cc with single-layer frames: the ``top_m`` SER encoder layers most similar.

    Called after the source-only warm-up (:func:`warmup_epochs`): every ``train`` utterance of
    both corpora passes the model in eval mode; each layer's similarity is
    :func:`layer_similarity` of the two corpora's pooled outputs. ``top_m`` must be smaller
    than the encoder's layers (:func:`check_top_m`).
    """
    check_top_m(top_m, model.config.n_layers, "SER encoder (train.n_layers)")
    was_training = model.training
    model.eval()
    a = pooled_layers(model, src, src.rows("train"), 2 * tp.batch_size)
    b = pooled_layers(model, tgt, tgt.rows("train"), 2 * tp.batch_size)
    model.train(was_training)
    sims = [float(layer_similarity(a[i], b[i])) for i in range(len(a))]
    return top_layers(sims, top_m), sims


def with_encoder_layers(
    model: SERModel, src: CorpusData, tgt: CorpusData, anchoring: Anchoring, tp: TrainParams
) -> Anchoring:
    """la_cc's anchoring with the encoder layers chosen on ``model`` (:func:`choose_layers`)."""
    layers, sims = choose_layers(model, src, tgt, tp, int(anchoring.param("top_m")))
    log.info(
        "la_cc: anchored encoder layers %s (similarity %s)", layers, [round(x, 3) for x in sims]
    )
    return dataclasses.replace(anchoring, layers=layers, similarity=tuple(sims))
