"""UAR, confusion matrices and bootstrap confidence intervals; pure functions on label arrays."""

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
