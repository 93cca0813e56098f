"""Datasets of variable-length series and the soft-DTW helpers the stages use on them.

Validation and padding of datasets, linear resampling, centroid rows without padding, soft-DTW
of all pairs of two lists of series, the soft-DTW divergence matrix and the assignment of series
to their closest centroid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

import agcc.sdtw.compiled as compiled
from agcc.sdtw.kernel import divergence, soft_dtw_cross

ArrayLike = np.ndarray | Sequence[np.ndarray]


def _strip_padding(series: np.ndarray, index: int) -> np.ndarray:
    """One series as (T, D) float64 without trailing all-NaN rows, checked for NaN and length."""
    values = np.asarray(series, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"series {index} must be (T, D) or (T,), got shape {values.shape}")
    filled = ~np.isnan(values).all(axis=1)
    length = int(filled.nonzero()[0][-1]) + 1 if filled.any() else 0
    values = values[:length]
    if length < 2:
        raise ValueError(f"series {index} has {length} frame(s); at least 2 are needed")
    if not np.isfinite(values).all():
        frame, dim = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(
            f"series {index} has a non-finite value {values[frame, dim]} at frame {frame}, "
            f"dim {dim} (only trailing all-NaN padding rows are allowed)"
        )
    return values


def as_padded_dataset(X: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate a dataset and return it zero-padded: values (n, T_max, D) and lengths (n,).

    X is a sequence of (T_i, D) arrays (or (T_i,) for D = 1), or an (n, T, D) array padded with
    trailing all-NaN rows as produced by ``tslearn.utils.to_time_series_dataset``. NaN inside a
    series, series shorter than 2 frames and mixed feature counts raise ``ValueError``.
    """
    series = [_strip_padding(s, i) for i, s in enumerate(X)]
    if not series:
        raise ValueError("the dataset is empty (0 series)")
    dims = {s.shape[1] for s in series}
    if len(dims) != 1:
        raise ValueError(f"all series must have the same number of features, got {sorted(dims)}")
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    values = np.zeros((len(series), int(lengths.max()), dims.pop()), dtype=np.float64)
    for i, s in enumerate(series):
        values[i, : len(s)] = s
    return values, lengths


def resample(series: np.ndarray, size: int) -> np.ndarray:
    """Linear resampling of one series (T, D) to (size, D), as tslearn's TimeSeriesResampler."""
    if len(series) == 1:
        return np.repeat(series, size, axis=0)
    old, new = np.linspace(0.0, 1.0, len(series)), np.linspace(0.0, 1.0, size)
    return np.stack([np.interp(new, old, series[:, j]) for j in range(series.shape[1])], axis=1)


#: Segments per soft-DTW call when assigning; bounds memory, gives the progress bar its steps.
ASSIGN_CHUNK = 4096


def _padded(series: list[np.ndarray], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Series as a zero-padded float64 tensor (N, T_max, D) and their lengths (N,)."""
    lengths = torch.tensor([len(s) for s in series], dtype=torch.long)
    out = torch.zeros((len(series), int(lengths.max()), series[0].shape[1]), dtype=torch.float64)
    for i, s in enumerate(series):
        out[i, : len(s)] = torch.from_numpy(np.asarray(s, dtype=np.float64))
    return out.to(device), lengths.to(device)


def centroid_series(centroids: np.ndarray) -> list[np.ndarray]:
    """Centroids (k, T, D) as a list of (T_j, D) arrays without trailing all-NaN padding frames."""
    return [c[np.isfinite(c).all(axis=1)] for c in centroids]


#: Series of ``b`` per call of the compiled kernel in :func:`sdtw_cross` (bounds its memory).
CROSS_CHUNK = 64


def _sdtw_cross_compiled(a: list[np.ndarray], b: list[np.ndarray], gamma: float) -> np.ndarray:
    """:func:`sdtw_cross` on the CPU by the compiled kernel, in float64."""
    xa, la = (t.numpy() for t in _padded(a, "cpu"))
    xb, lb = (t.numpy() for t in _padded(b, "cpu"))
    if min(la.min(), lb.min()) < 1:
        raise ValueError("every series needs at least 1 frame, got an empty one")
    order = np.argsort(la, kind="stable")
    rows = compiled.consecutive_rows(len(a), compiled.lanes_for(xa.dtype))
    blocks = compiled.pack(np.ascontiguousarray(xa[order]), la[order], rows, gamma)
    out = np.empty((len(a), len(b)))
    with compiled.threads(None):
        for s in range(0, len(b), CROSS_CHUNK):
            part = slice(s, s + CROSS_CHUNK)
            out[order, part] = compiled.cross(blocks, xb[part], lb[part], gamma)
    return out


def sdtw_cross(a: list[np.ndarray], b: list[np.ndarray], gamma: float, device: str) -> np.ndarray:
    """Soft-DTW of every pair (a_i, b_j): (len(a), len(b)) float64, by the compiled kernel on the
    CPU (:mod:`agcc.sdtw.compiled`), by agcc.sdtw.soft_dtw_cross on another device."""
    if torch.device(device).type == "cpu":
        return _sdtw_cross_compiled(a, b, gamma)
    xa, la = _padded(a, device)
    xb, lb = _padded(b, device)
    return soft_dtw_cross(xa, xb, gamma, la, lb).cpu().numpy()


def pairwise_divergence(series: list[np.ndarray], gamma: float, device: str) -> np.ndarray:
    r"""Soft-DTW divergence between all pairs of ``series``: a symmetric (n, n) matrix >= 0.

    D(x, y) = sdtw(x, y) - (sdtw(x, x) + sdtw(y, y)) / 2 (Blondel, Mensch & Vert, AISTATS 2021),
    which is >= 0 and 0 on the diagonal; tiny negative round-off is clipped to 0 and the matrix
    is symmetrised, so it can feed ``silhouette_score(metric="precomputed")``.
    """
    cross = sdtw_cross(series, series, gamma, device)  # (n, n)
    self_ = np.diag(cross)
    div = divergence(cross, self_[:, None], self_[None, :])
    div = np.clip(0.5 * (div + div.T), 0.0, None)
    np.fill_diagonal(div, 0.0)
    return div


def assign(
    series: list[np.ndarray], centroids: np.ndarray, gamma: float, device: str
) -> np.ndarray:
    """Cluster id (N,) of each series: argmin_j sdtw(x_i, c_j) over the centroids (k, T, D)."""
    cents = centroid_series(centroids)
    labels = np.empty(len(series), dtype=np.int64)
    starts = range(0, len(series), ASSIGN_CHUNK)
    for s in tqdm(starts, desc="assign clusters", disable=len(starts) < 2):
        dist = sdtw_cross(series[s : s + ASSIGN_CHUNK], cents, gamma, device)  # (n, k)
        labels[s : s + ASSIGN_CHUNK] = dist.argmin(axis=1)
    return labels
