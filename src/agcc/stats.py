"""UAR, confusion matrices, bootstrap CIs and cluster association measures; pure, on arrays."""

from __future__ import annotations

import math

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true, y_pred must be (n,) alike, got {y_true.shape}, {y_pred.shape}")
    bad = np.concatenate([y_true, y_pred])
    bad = bad[(bad < 0) | (bad >= n_classes)]
    if len(bad):
        raise ValueError(f"class ids must lie in 0..{n_classes - 1}, got {bad[0]}")
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes**2)  # (C * C,)
    return flat.reshape(n_classes, n_classes)  # (C, C)


def uar(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    r"""Unweighted average recall (macro recall): UAR = (1 / |K|) sum_{c in K} TP_c / N_c.

    K is the set of classes present in y_true (N_c > 0), so a class absent from the test set
    neither counts as 0 nor as 1. NaN for an empty y_true.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    if not support.any():
        return math.nan
    return float((np.diag(cm)[support > 0] / support[support > 0]).mean())


def binary_uar(y_true: np.ndarray, y_pred: np.ndarray, positive: int) -> float:
    r"""One-vs-rest UAR of class ``positive`` from multi-class labels: (TPR + TNR) / 2.

    An item is predicted positive iff y_pred == positive (the 4-class argmax), so the binary
    decision is derived from the 4-class posteriors. With one side absent from y_true, the UAR
    is the recall of the side present.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return uar((y_true == positive).astype(np.int64), (y_pred == positive).astype(np.int64), 2)


def bootstrap_uar(
    y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray, n_classes: int
) -> np.ndarray:
    r"""UAR of each prediction row on each bootstrap resample, vectorised.

    With W[b, i] the number of times test item i is drawn in resample b, the recall of class c on
    resample b is sum_i W[b, i] [y_i = c][pred_i = c] / sum_i W[b, i] [y_i = c]; classes absent
    from a resample are left out of its mean.

    Args:
        y_true: (n,) true classes; y_pred: (M, n) predictions of M models (or seeds).
        idx: (B, n) resampled item indices.

    Returns:
        (M, B) UARs.
    """
    n_boot, n = idx.shape
    weights = np.zeros((n_boot, n))
    np.add.at(weights, (np.arange(n_boot)[:, None], idx), 1.0)  # (B, n) draw counts
    onehot = np.eye(n_classes)[np.asarray(y_true)]  # (n, C)
    support = weights @ onehot  # (B, C)
    hits = (np.asarray(y_pred) == np.asarray(y_true)[None, :])[:, :, None] * onehot  # (M, n, C)
    recall = np.einsum("bn,mnc->mbc", weights, hits) / np.where(support > 0, support, 1.0)
    present = support > 0  # (B, C)
    return (recall * present).sum(axis=2) / present.sum(axis=1)  # (M, B)


def paired_bootstrap_diff(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    n_boot: int,
    ci: float,
    rng: np.random.Generator,
    n_classes: int,
) -> tuple[float, float, float]:
    r"""Seed-averaged UAR difference of A minus B with a paired percentile bootstrap CI.

    diff = mean_s UAR(A_s) - mean_s UAR(B_s) on the full test set; the CI is the central ``ci``
    interval of the same difference over ``n_boot`` resamples of the test items, each resample
    shared by A, B and every seed (paired).

    Args:
        y_true: (n,) true classes; pred_a: (S_a, n), pred_b: (S_b, n) predictions per seed.

    Returns:
        (diff, low, high) as fractions (not percent).
    """
    y_true = np.asarray(y_true)
    full = uar_rows(y_true, pred_a, n_classes).mean() - uar_rows(y_true, pred_b, n_classes).mean()
    idx = rng.integers(0, len(y_true), size=(n_boot, len(y_true)))  # (B, n)
    diffs = bootstrap_uar(y_true, pred_a, idx, n_classes).mean(axis=0) - bootstrap_uar(
        y_true, pred_b, idx, n_classes
    ).mean(axis=0)  # (B,)
    tail = (1.0 - ci) / 2.0
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    return float(full), float(low), float(high)


def uar_rows(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """UAR (M,) of each row of predictions (M, n) against y_true (n,)."""
    return np.array([uar(y_true, row, n_classes) for row in np.atleast_2d(y_pred)])


FIG2_PERMUTATIONS = 50


def association_counts(ag: np.ndarray, ac: np.ndarray, k_ag: int, k_ac: int) -> np.ndarray:
    """Contingency table N (k_ag, k_ac): N[i, j] = segments in AG cluster i and acoustic j."""
    ag, ac = np.asarray(ag, dtype=np.int64), np.asarray(ac, dtype=np.int64)
    if ag.shape != ac.shape or (ag < 0).any() or (ac < 0).any():
        raise ValueError(f"ag and ac must be equal-length ids >= 0, got {ag.shape}, {ac.shape}")
    if len(ag) and (ag.max() >= k_ag or ac.max() >= k_ac):
        raise ValueError(f"ids exceed k_ag={k_ag} / k_ac={k_ac}: {ag.max()}, {ac.max()}")
    return np.bincount(ag * k_ac + ac, minlength=k_ag * k_ac).reshape(k_ag, k_ac)


def row_shares(counts: np.ndarray) -> np.ndarray:
    r"""Row-normalised counts S[i, j] = N[i, j] / sum_j N[i, j]; NaN rows where N[i, :] = 0.

    Fig. 2's cells: the share of AG cluster i's segments that fall in acoustic cluster j.
    """
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)  # (k_ag, 1)
    out = np.full_like(counts, np.nan)
    np.divide(counts, totals, out=out, where=totals > 0)
    return out


def mean_max_row_share(counts: np.ndarray) -> float:
    r"""Mean over non-empty AG clusters of the largest row share: (1/|I|) sum_i max_j S[i, j].

    1 when every AG cluster falls into a single acoustic cluster, 1 / k_ac at the most spread;
    NaN when the table is empty.

    Args:
        counts: (k_ag, k_ac) contingency table (see :func:`association_counts`).
    """
    shares = row_shares(counts)
    rows = np.isfinite(shares).all(axis=1)
    return float(shares[rows].max(axis=1).mean()) if rows.any() else math.nan


def association(
    ag: np.ndarray, ac: np.ndarray, k_ag: int, k_ac: int, rng: np.random.Generator
) -> dict[str, float]:
    """Mean max row share, its permutation baseline and the NMI of AG vs acoustic cluster ids.

    The baseline is the mean max row share over FIG2_PERMUTATIONS shuffles of ``ac`` (same
    cluster sizes, no association). NaNs when there are no segments.
    """
    from sklearn.metrics import normalized_mutual_info_score

    if len(ag) == 0:
        return {"max_row_share": math.nan, "max_row_share_perm": math.nan, "nmi": math.nan}
    perm = [
        mean_max_row_share(association_counts(ag, rng.permutation(ac), k_ag, k_ac))
        for _ in range(FIG2_PERMUTATIONS)
    ]
    return {
        "max_row_share": mean_max_row_share(association_counts(ag, ac, k_ag, k_ac)),
        "max_row_share_perm": float(np.mean(perm)),
        "nmi": float(normalized_mutual_info_score(ag, ac)),
    }
