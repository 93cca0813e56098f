"""UAR, confusion matrices, bootstrap CIs and cluster association measures; pure, on arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Fewer seeds than this: the seed level of the bootstrap has too few values to mean anything.
MIN_CI_SEEDS = 3


def _check_labels(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> None:
    """Raise ValueError unless y_true, y_pred are alike (n,) class ids in 0..n_classes-1."""
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true, y_pred must be (n,) alike, got {y_true.shape}, {y_pred.shape}")
    bad = np.concatenate([y_true, y_pred])
    bad = bad[(bad < 0) | (bad >= n_classes)]
    if len(bad):
        raise ValueError(f"class ids must lie in 0..{n_classes - 1}, got {bad[0]}")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (C, C) from scikit-learn: row = true class, column = predicted class."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    _check_labels(y_true, y_pred, n_classes)
    return sk_confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))  # (C, C)


def uar(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    r"""Unweighted average recall (macro recall): UAR = (1 / |K|) sum_{c in K} TP_c / N_c.

    scikit-learn's ``recall_score(average="macro", labels=range(n_classes),
    zero_division=nan)``: K is the set of classes present in y_true (N_c > 0), so a class
    absent from the test set neither counts as 0 nor as 1 (its NaN recall is left out of the
    mean). NaN for an empty y_true.
    """
    from sklearn.metrics import recall_score

    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    _check_labels(y_true, y_pred, n_classes)
    if len(y_true) == 0:
        return math.nan
    labels = list(range(n_classes))
    return float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=np.nan))


def binary_uar(y_true: np.ndarray, y_pred: np.ndarray, positive: int) -> float:
    r"""One-vs-rest UAR of class ``positive`` from multi-class labels: (TPR + TNR) / 2.

    An item is predicted positive iff y_pred == positive (the 4-class argmax), so the binary
    decision is derived from the 4-class posteriors. With one side absent from y_true, the UAR
    is the recall of the side present.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return uar((y_true == positive).astype(np.int64), (y_pred == positive).astype(np.int64), 2)


def uar_rows(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """UAR (M,) of each row of predictions (M, n) against y_true (n,)."""
    return np.array([uar(y_true, row, n_classes) for row in np.atleast_2d(y_pred)])


def draw_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """W (B, n) float: W[b, i] = how often item i appears in row b of the draws idx (B, k)."""
    n_boot = idx.shape[0]
    flat = (np.arange(n_boot)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def bootstrap_uar(
    y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray, n_classes: int
) -> np.ndarray:
    r"""UAR of each prediction row on each bootstrap resample, vectorised.

    With W[b, i] the number of times test item i is drawn in resample b, the recall of class c on
    resample b is sum_i W[b, i] [y_i = c][pred_i = c] / sum_i W[b, i] [y_i = c]; classes absent
    from a resample are left out of its mean (the rule of :func:`uar`).

    Args:
        y_true: (n,) true classes; y_pred: (M, n) predictions of M models (or seeds).
        idx: (B, n) resampled item indices.

    Returns:
        (M, B) UARs.
    """
    y_true = np.asarray(y_true)
    weights = draw_counts(idx, len(y_true))  # (B, n)
    onehot = np.eye(n_classes)[y_true]  # (n, C)
    support = weights @ onehot  # (B, C)
    hits = (np.asarray(y_pred) == y_true[None, :])[:, :, None] * onehot  # (M, n, C)
    recall = np.einsum("bn,mnc->mbc", weights, hits) / np.where(support > 0, support, 1.0)
    present = support > 0  # (B, C)
    return (recall * present).sum(axis=2) / present.sum(axis=1)  # (M, B)


@dataclass(frozen=True)
class BootstrapDiff:
    """A minus B: point difference, percentile CI and two-sided p-value (fractions)."""

    diff: float
    low: float
    high: float
    p: float
    n_seeds: int

    @property
    def meaningful(self) -> bool:
        """False with fewer than MIN_CI_SEEDS seeds: the CI is then reported but flagged."""
        return self.n_seeds >= MIN_CI_SEEDS


def hierarchical_paired_bootstrap(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    n_boot: int,
    ci: float,
    rng: np.random.Generator,
    n_classes: int,
) -> BootstrapDiff:
    r"""Seed-averaged UAR difference A minus B with a two-level (seeds, utterances) bootstrap.

    diff = mean_s UAR(A_s) - mean_s UAR(B_s) on the full test set. Each of ``n_boot``
    resamples first draws S seeds with replacement (the same seeds for A and B: row s of both
    is seed s), then n test utterances with replacement (the same draw for A and B: paired),
    and takes mean_j UAR*(A_{s_j}) - mean_j UAR*(B_{s_j}) on that draw. The CI is the central
    ``ci`` percentile interval of those differences, so a wide seed spread widens it; the
    p-value is :func:`bootstrap_p_value`.

    scipy.stats.bootstrap does not fit: it resamples the observations of one level (with
    ``paired=True``, one shared index), not seeds and then utterances within the resample, and
    it recomputes a Python statistic per resample; the draws here are two numpy integer arrays
    (B, S) and (B, n), and the UARs of all resamples come from one vectorised count.

    Args:
        y_true: (n,) true classes; pred_a, pred_b: (S, n) predictions, rows in the same seed
            order (the caller checks both methods have the same seeds).
        rng: numpy Generator (seeded from base.seed by the caller).
    """
    pred_a, pred_b = np.atleast_2d(pred_a), np.atleast_2d(pred_b)
    if pred_a.shape != pred_b.shape:
        raise ValueError(f"pred_a, pred_b must be (S, n) alike, got {pred_a.shape}, {pred_b.shape}")
    n_seeds, n = pred_a.shape
    full = uar_rows(y_true, pred_a, n_classes).mean() - uar_rows(y_true, pred_b, n_classes).mean()
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))  # (B, S) seed draws
    utts = rng.integers(0, n, size=(n_boot, n))  # (B, n) utterance draws
    per_seed = bootstrap_uar(y_true, pred_a, utts, n_classes) - bootstrap_uar(
        y_true, pred_b, utts, n_classes
    )  # (S, B)
    diffs = np.take_along_axis(per_seed.T, seeds, axis=1).mean(axis=1)  # (B,)
    tail = (1.0 - ci) / 2.0
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    return BootstrapDiff(float(full), float(low), float(high), bootstrap_p_value(diffs), n_seeds)


def bootstrap_p_value(diffs: np.ndarray) -> float:
    r"""Two-sided bootstrap p-value of "difference = 0" from the resampled differences d* (B,).

    p = min(1, 2 (1 + min(#{d* <= 0}, #{d* >= 0})) / (B + 1)): the percentile-CI inversion
    (0 lies outside the central 1 - p interval), with the +1 that keeps p above 0 for a
    finite B (all-zero differences give 1).
    """
    diffs = np.asarray(diffs)
    tail = min(int((diffs <= 0).sum()), int((diffs >= 0).sum()))
    return min(1.0, 2.0 * (1 + tail) / (len(diffs) + 1))


def holm(p_values: np.ndarray) -> np.ndarray:
    r"""Holm step-down adjusted p-values, in the input order: max_{j <= i} min(1, (m - j) p_(j)).

    Written here because SciPy has no Holm correction (only false_discovery_control) and
    statsmodels (multipletests) is not a dependency.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if not np.isfinite(p).all() or ((p < 0) | (p > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p}")
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    out = np.empty_like(p)
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


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
