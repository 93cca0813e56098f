"""Cluster overlap between two corpora: Table I's measures, Eq. 1 and Fig. 1's cluster choice.

Pure functions on cluster counts and assignment frames (columns corpus, vowel, emotion, cluster).

See docs/method.md section 5 for the reading of Table I's averages against Eq. 1 as printed.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from agcc.errors import DataError

log = logging.getLogger(__name__)

#: The paper's six vowels as Table I labels them.
IPA = {"AA": "/a/", "AH": "/ə/", "EH": "/ɛ/", "IY": "/i/", "AE": "/æ/", "UW": "/u/"}


#: The paper's row order for the emotion-specific averages.
EMOTION_ORDER = ("neutral", "happiness", "anger", "sadness")


def cluster_shares(counts: np.ndarray) -> np.ndarray:
    r"""Share of each corpus's segments per cluster: p(c, i) = N(c, i) / N(c).

    Paper Sec. II-C.1, Eq. 1's N_{c,i} / N_c. A corpus with no segment (N(c) = 0) gets a row of
    zeros, so every overlap with it is 0.

    Args:
        counts: (C, k) non-negative segment counts N(c, i).

    Returns:
        (C, k) float64 shares; each non-empty row sums to 1.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or (counts < 0).any():
        raise ValueError(f"counts must be a (C, k) array of counts >= 0, got {counts.tolist()}")
    totals = counts.sum(axis=1, keepdims=True)  # (C, 1)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def overlap(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    r"""Per-cluster overlap of two corpora, Table I (top): o(i) = 100 min(p1_i, p2_i) / max(...).

    o(i) = 0 where either corpus has no segment in cluster i (docs/method.md section 5).

    Args:
        p1, p2: (k,) cluster shares of corpus 1 and 2 (see :func:`cluster_shares`).

    Returns:
        (k,) overlaps in [0, 100].
    """
    p1, p2 = np.asarray(p1, dtype=np.float64), np.asarray(p2, dtype=np.float64)
    if p1.shape != p2.shape or p1.ndim != 1:
        raise ValueError(f"p1, p2 must be (k,) of equal shape, got {p1.shape}, {p2.shape}")
    lo, hi = np.minimum(p1, p2), np.maximum(p1, p2)
    return np.divide(100.0 * lo, hi, out=np.zeros_like(lo), where=lo > 0)


def common_clusters(o: np.ndarray, threshold: float) -> np.ndarray:
    """Mask (k,) of common clusters: present in both corpora (o > 0) and o(i) >= threshold."""
    o = np.asarray(o, dtype=np.float64)
    return (o > 0) & (o >= threshold)


def average_overlap(o: np.ndarray, threshold: float) -> float:
    r"""Average overlap, Table I (bottom): mean of o(i) over the common clusters.

    avg = (1 / K) sum_{i common} o(i), with K the number of clusters where o(i) > 0 and
    o(i) >= threshold (the paper's 25 %). NaN when no cluster is common.

    Args:
        o: (k,) per-cluster overlaps (see :func:`overlap`).
        threshold: the common-cluster threshold in percent.

    Returns:
        The average in [threshold, 100], or NaN.
    """
    o = np.asarray(o, dtype=np.float64)
    mask = common_clusters(o, threshold)
    return float(o[mask].mean()) if mask.any() else math.nan


def eq1_similarity(p1: np.ndarray, p2: np.ndarray, common_mask: np.ndarray) -> float:
    r"""Eq. 1 of the paper exactly as printed: Sim = (100 / K) sum_{i=1}^{K} min(p1_i, p2_i).

    The sum runs over the K common clusters (``common_mask``), with p_c,i = N_{c,i} / N_c.
    Unlike the average overlap it is not normalised by max(p1, p2), so it shrinks as the
    segments spread over more clusters (its maximum is 100 / K). NaN when K = 0.

    Args:
        p1, p2: (k,) cluster shares of corpus 1 and 2.
        common_mask: (k,) boolean mask of the common clusters.

    Returns:
        Sim in [0, 100], or NaN.
    """
    p1, p2 = np.asarray(p1, dtype=np.float64), np.asarray(p2, dtype=np.float64)
    mask = np.asarray(common_mask, dtype=bool)
    if not (p1.shape == p2.shape == mask.shape):
        raise ValueError(f"shapes differ: p1 {p1.shape}, p2 {p2.shape}, mask {mask.shape}")
    k_common = int(mask.sum())
    if k_common == 0:
        return math.nan
    return float(100.0 / k_common * np.minimum(p1, p2)[mask].sum())


def corpus_counts(frame: pd.DataFrame, corpora: tuple[str, str], k: int) -> np.ndarray:
    """Counts N(c, i) (2, k) of the rows of ``frame`` (corpus, cluster) per corpus and cluster."""
    return np.stack(
        [np.bincount(frame.loc[frame["corpus"] == c, "cluster"], minlength=k) for c in corpora]
    )


def overlap_cell(
    frame: pd.DataFrame, corpora: tuple[str, str], k: int, thr: float
) -> tuple[float, float]:
    """Average overlap and Eq. 1 Sim of one vowel/emotion subset (NaN if a corpus is empty)."""
    counts = corpus_counts(frame, corpora, k)
    if (counts.sum(axis=1) == 0).any():
        return math.nan, math.nan
    p = cluster_shares(counts)
    o = overlap(p[0], p[1])
    return average_overlap(o, thr), eq1_similarity(p[0], p[1], common_clusters(o, thr))


def pick_fig1_clusters(
    frame: pd.DataFrame, corpora: tuple[str, str], vowels: tuple[str, str], k: int, thr: float
) -> tuple[int, int]:
    """Cluster ids (0-based) for Fig. 1: each vowel's most populous common cluster, distinct.

    Candidates of a vowel are ranked by (common, present in both corpora, N(1, i) + N(2, i)),
    best first, smaller id on ties; the second vowel skips the first pick.
    """
    picks: list[int] = []
    for v in vowels:
        counts = corpus_counts(frame[frame["vowel"] == v], corpora, k)  # (2, k)
        p = cluster_shares(counts)
        o = overlap(p[0], p[1])
        key = np.lexsort((-np.arange(k), counts.sum(axis=0), o > 0, common_clusters(o, thr)))
        best = [int(i) for i in key[::-1] if int(i) not in picks]
        if not best or counts[:, best[0]].sum() == 0:
            raise DataError(
                f"Fig. 1: vowel {v!r} has no segments in a cluster other than {picks}; "
                f"counts per cluster {counts.tolist()}"
            )
        if not common_clusters(o, thr)[best[0]]:
            log.warning("Fig. 1: %s has no unused common cluster; using cluster %d", v, best[0] + 1)
        picks.append(best[0])
    return picks[0], picks[1]
