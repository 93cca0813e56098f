"""Padded batches of utterances and their segments, and one epoch's length-bucketed steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from agcc.training.data import CorpusData


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
