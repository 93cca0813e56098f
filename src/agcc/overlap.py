"""Cluster overlap measures between two corpora (the paper's Table I and Eq. 1); pure functions.

See docs/method.md section 5 for the reading of Table I's averages against Eq. 1 as printed.
"""

from __future__ import annotations

import math

import numpy as np


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

    o(i) = 0 where either corpus has no segment in cluster i (METHOD.md sec. 5).

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
