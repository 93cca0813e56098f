"""Soft-DTW and Soft-DTW k-means, batched in torch (CPU or CUDA).

Soft-DTW (Cuturi & Blondel, "Soft-DTW: a Differentiable Loss Function for Time-Series", ICML 2017)
replaces the hard minimum of the DTW recursion by the soft minimum

    softmin_g(a, b, c) = -g * log(exp(-a/g) + exp(-b/g) + exp(-c/g)),

so that for two series x (n, D) and y (m, D) with cost d(i, j) = ||x_i - y_j||^2

    R(0, 0) = 0,  R(i, 0) = R(0, j) = +inf  (i, j >= 1)
    R(i, j) = d(i, j) + softmin_g(R(i-1, j-1), R(i-1, j), R(i, j-1))
    sdtw_g(x, y) = R(n, m).

Every cell of one anti-diagonal i + j = const depends only on the two previous anti-diagonals, so
the forward pass runs as a wavefront: one vectorised step per anti-diagonal for all cells of all
pairs of a batch at once. The gradient is the expected alignment matrix E = dR(n, m)/dd(i, j) of
the paper's Algorithm 2, computed by the same wavefront in reverse from the softmin weights saved
by the forward pass. Variable lengths are handled by reading R(n_b, m_b) per pair and seeding the
backward pass there: cells beyond a pair's lengths never feed its value, so padding cannot change
it.

The k-means engine (:class:`SoftDTWKMeans`) has the objective of
``tslearn.clustering.TimeSeriesKMeans(metric="softdtw")``: assignment to the centroid of smallest
soft-DTW, barycentres minimising the sum of soft-DTW to the members, inertia = mean over series of
sdtw(x_i, c_{l_i})^2. It updates all centroids at once. :func:`fit_tslearn` runs the reference.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | Sequence[np.ndarray]

# exp() of arguments below about -87 (float32) returns denormals or zero on a slow path that
# costs up to 30x a normal exp on CPU; such weights are < 2e-35 relative to the largest (1), so
# clamping the argument changes a softmin by less than 4e-35 relative.
_EXP_FLOOR = -80.0

#: Step reductions (at most) of the line search of one barycentre L-BFGS iteration.
_MAX_BACKTRACKS = 10

#: Memory per batch of series-centroid pairs of the k-means engine, in MB, by device type
#: (softmin weights for the gradient; a batch without gradient needs about a quarter).
DEFAULT_BATCH_MB = {"cpu": 64.0, "cuda": 4096.0}


def _pairs_per_batch(batch_mb: float, itemsize: int, n: int, m: int) -> int:
    """Pairs of an n x m grid whose gradient pass fits in batch_mb MB.

    Per pair: 3 n m values for the costs and their intermediates and the 4 (n + m + 3)(n + 2)
    factored softmin weights.
    """
    per_pair = 3 * n * m + 4 * (n + m + 3) * (n + 2)
    return max(1, int(batch_mb * 2**20 / (itemsize * per_pair)))


@contextmanager
def _torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` intra-op threads (process-wide), then restore them."""
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Workspace:
    """Buffers kept across the soft-DTW batches of one fit, by name.

    On CPU a fresh tensor above glibc's 32 MB mmap threshold is page-faulted in on first write,
    at about the cost of the arithmetic done on it; reused buffers are already mapped.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An uninitialised tensor of ``shape`` with the dtype and device of ``like``."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if (
            buffer is None
            or buffer.numel() < size
            or buffer.dtype != like.dtype
            or buffer.device != like.device
        ):
            buffer = like.new_empty(size)
            self._buffers[name] = buffer
        return buffer[:size].view(shape)


def _take(workspace: _Workspace | None, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """A buffer from ``workspace`` or, without one, a fresh uninitialised tensor."""
    return like.new_empty(shape) if workspace is None else workspace.take(name, shape, like)


# --------------------------------------------------------------------------------------------
# Wavefront kernel. Layout: pairs last, (rows, pairs); anti-diagonal d holds cells i + j = d
# (1-based), stored by row i in a vector of N + 2 entries (row 0 and row N + 1 are borders).
# --------------------------------------------------------------------------------------------


def _diag_rows(d: int, n: int, m: int) -> tuple[int, int]:
    """First and last row i (1-based) of the cells (i, d - i) inside an n x m grid."""
    return max(1, d - m), min(n, d - 1)


def _diag_view(flat: Tensor, d: int, lo: int, hi: int, m: int) -> Tensor:
    """View of the cells (i, d - i), i = lo..hi, of a (n * m, B) row-major cost or grad matrix."""
    # cell (i, j) (1-based) sits at flat row (i-1)*m + j-1 = (i-1)*(m-1) + d - 2.
    step = max(m - 1, 1)
    start = (lo - 1) * (m - 1) + d - 2
    return flat[start : start + (hi - lo) * step + 1 : step]


def _end_groups(x_len: Tensor, y_len: Tensor) -> dict[int, Tensor]:
    """Pair indices grouped by the anti-diagonal n_b + m_b on which their value R(n_b, m_b) lies."""
    ends = x_len + y_len
    order = torch.argsort(ends)
    values, counts = torch.unique_consecutive(ends[order], return_counts=True)
    groups = torch.split(order, counts.tolist())
    return dict(zip(values.tolist(), groups, strict=True))


def _sdtw_wavefront(
    cost: Tensor,
    x_len: Tensor,
    y_len: Tensor,
    keep_weights: bool,
    workspace: _Workspace | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Soft-DTW in units of gamma of a batch of cost matrices (n, m, B) by anti-diagonals.

    Returns the values R(n_b, m_b) (B,) and, if ``keep_weights``, a (4, n + m + 3, n + 2, B)
    tensor holding for every cell exp(low - R) of its diagonal, upper and left predecessor
    (low = their minimum) and 1 / the sum of the three: the softmin weights, kept factored so
    that the forward pass needs no division per weight.
    """
    n, m, batch = cost.shape
    flat = cost.reshape(n * m, batch)  # (n*m, B)
    ring = _take(workspace, "ring", (3, n + 2, batch), cost).fill_(math.inf)
    ring[0, 0] = 0.0  # R(0, 0)
    # Every op writes into preallocated scratch: fresh allocations of a few hundred kB per op
    # cost more than the arithmetic on CPU.
    scratch = _take(workspace, "scratch", (5, n, batch), cost)
    weights = None
    if keep_weights:
        weights = _take(workspace, "weights", (4, n + m + 3, n + 2, batch), cost)
        weights[:3, n + m + 1 :] = 0.0  # read by the backward pass of the last diagonals
    out = cost.new_empty(batch)
    ends = _end_groups(x_len, y_len)
    for d in range(2, n + m + 1):
        lo, hi = _diag_rows(d, n, m)
        prev2, prev1, cur = ring[(d - 2) % 3], ring[(d - 1) % 3], ring[d % 3]
        if d == 3:
            cur[0] = math.inf  # this buffer held R(0, 0); row 0 is +inf on every later diagonal
        a, b, c = prev2[lo - 1 : hi], prev1[lo - 1 : hi], prev1[lo : hi + 1]  # (cnt, B) each
        low, ea, eb, ec, total = scratch[:, : hi - lo + 1]
        if weights is not None:
            ea, eb, ec = weights[:3, d, lo : hi + 1]
            # the backward pass reads one row beyond each end of a diagonal: those must be 0
            weights[:3, d, lo - 1] = 0.0
            weights[:3, d, hi + 1] = 0.0
        torch.minimum(torch.minimum(a, b, out=low), c, out=low)
        torch.sub(low, a, out=ea).clamp_min_(_EXP_FLOOR).exp_()
        torch.sub(low, b, out=eb).clamp_min_(_EXP_FLOOR).exp_()
        torch.sub(low, c, out=ec).clamp_min_(_EXP_FLOOR).exp_()
        torch.add(ea, eb, out=total).add_(ec)
        if weights is not None:
            torch.reciprocal(total, out=weights[3, d, lo : hi + 1])
        value = torch.add(_diag_view(flat, d, lo, hi, m), low, out=cur[lo : hi + 1])
        value.sub_(total.log_())
        if d in ends:
            idx = ends[d]
            out[idx] = cur[x_len[idx], idx]
    return out, weights


def _sdtw_wavefront_grad(
    weights: Tensor,
    grad_out: Tensor,
    x_len: Tensor,
    y_len: Tensor,
    grid: tuple[int, int],
    workspace: _Workspace | None = None,
) -> Tensor:
    """Gradient (n, m, B) of the values w.r.t. the costs: E of Algorithm 2, seeded by grad_out.

    E(i, j) = E(i+1, j+1) w_diag(i+1, j+1) + E(i+1, j) w_up(i+1, j) + E(i, j+1) w_left(i, j+1),
    with E(n_b, m_b) = grad_out_b; cells outside a pair's lengths keep E = 0. The ring holds
    E / (sum of exponentials) so each weight costs one multiply-add.
    """
    (n, m), batch = grid, grad_out.shape[0]
    grad = _take(workspace, "grad", (n * m, batch), weights)  # (n*m, B), every cell is written
    ring = _take(workspace, "ring", (3, n + 2, batch), weights).zero_()
    ends = _end_groups(x_len, y_len)
    e_diag, e_up, e_left, inv_total = weights
    for d in range(n + m, 1, -1):
        lo, hi = _diag_rows(d, n, m)
        next2, next1, cur = ring[(d + 2) % 3], ring[(d + 1) % 3], ring[d % 3]
        e = torch.mul(next2[lo + 1 : hi + 2], e_diag[d + 2, lo + 1 : hi + 2], out=cur[lo : hi + 1])
        e.addcmul_(next1[lo + 1 : hi + 2], e_up[d + 1, lo + 1 : hi + 2])
        e.addcmul_(next1[lo : hi + 1], e_left[d + 1, lo : hi + 1])
        if d in ends:
            idx = ends[d]
            cur[x_len[idx], idx] += grad_out[idx]
        _diag_view(grad, d, lo, hi, m).copy_(e)
        e.mul_(inv_total[d, lo : hi + 1])
    return grad.view(n, m, batch)


class _SoftDTWFromCost(torch.autograd.Function):
    """Soft-DTW of a batch of cost matrices (n, m, B) with lengths; backward by Algorithm 2."""

    @staticmethod
    def forward(ctx, cost: Tensor, x_len: Tensor, y_len: Tensor, gamma: float) -> Tensor:  # type: ignore[override]
        """Values (B,) = gamma * R(n_b, m_b) of the recursion run on cost / gamma."""
        keep = ctx.needs_input_grad[0]
        values, weights = _sdtw_wavefront(cost / gamma, x_len, y_len, keep_weights=keep)
        if keep:
            ctx.save_for_backward(weights, x_len, y_len)
            ctx.grid = cost.shape[:2]
        return values * gamma

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        """Expected alignment matrices scaled by the incoming gradient."""
        weights, x_len, y_len = ctx.saved_tensors
        n, m = ctx.grid
        grad = _sdtw_wavefront_grad(weights, grad_out.contiguous(), x_len, y_len, (n, m))
        return grad, None, None, None


# --------------------------------------------------------------------------------------------
# Public soft-DTW functions
# --------------------------------------------------------------------------------------------


def _check_gamma(gamma: float) -> None:
    """Reject a non-positive or non-finite smoothing parameter."""
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")


def _lengths(lengths: Tensor | None, batch: int, size: int, device: torch.device) -> Tensor:
    """Lengths as a long tensor on ``device``, default ``size``, checked to lie in 1..size."""
    if lengths is None:
        return torch.full((batch,), size, dtype=torch.long, device=device)
    out = torch.as_tensor(lengths, device=device).long()
    if out.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(out.shape)}")
    if batch and (out.min() < 1 or out.max() > size):
        raise ValueError(
            f"lengths must lie in 1..{size}, got min {int(out.min())}, max {int(out.max())}"
        )
    return out


def _masked(x: Tensor, lengths: Tensor) -> Tensor:
    """Series (B, T, D) cut to the longest length, padding frames zeroed (NaN padding allowed)."""
    x = x[:, : int(lengths.max())]  # (B, T', D)
    keep = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]  # (B, T')
    return torch.where(keep[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))


def _sq_norms(x: Tensor) -> Tensor:
    """Squared norms (..., T) of the frames of series (..., T, D)."""
    return (x * x).sum(-1)


def _pair_cost(
    x: Tensor, y: Tensor, scale: float = 1.0, workspace: _Workspace | None = None
) -> Tensor:
    """Scaled squared Euclidean costs (N, M, B) of paired series x (B, N, D), y (B, M, D)."""
    (batch, n, _), m = x.shape, y.shape[1]
    if workspace is None:  # differentiable path
        norms = _sq_norms(x)[:, :, None] + _sq_norms(y)[:, None, :]  # (B, N, M)
        cost = torch.baddbmm(norms, x, y.transpose(1, 2), beta=scale, alpha=-2.0 * scale)
        return cost.clamp_min_(0).permute(1, 2, 0).contiguous()  # (N, M, B)
    norms = workspace.take("norms", (batch, n, m), x)
    torch.add(_sq_norms(x)[:, :, None], _sq_norms(y)[:, None, :], out=norms)  # (B, N, M)
    norms.baddbmm_(x, y.transpose(1, 2), beta=scale, alpha=-2.0 * scale).clamp_min_(0)
    return workspace.take("cost", (n, m, batch), x).copy_(norms.permute(1, 2, 0))  # (N, M, B)


def soft_dtw(
    x: Tensor,
    y: Tensor,
    gamma: float = 1.0,
    x_len: Tensor | None = None,
    y_len: Tensor | None = None,
) -> Tensor:
    r"""Soft-DTW between paired series with squared Euclidean cost (Cuturi & Blondel 2017).

    sdtw_g(x_b, y_b) = R_b(n_b, m_b) with R(i, j) = ||x_i - y_j||^2
    + softmin_g(R(i-1, j-1), R(i-1, j), R(i, j-1)), R(0, 0) = 0, other borders +inf,
    softmin_g(a, b, c) = -g log(e^{-a/g} + e^{-b/g} + e^{-c/g}). As g -> 0 it tends to DTW with
    squared Euclidean cost; it can be negative (sdtw_g(x, x) < 0).

    Args:
        x: (B, N, D) series, frames beyond ``x_len`` are ignored (they may be NaN).
        y: (B, M, D) series, frames beyond ``y_len`` are ignored.
        gamma: smoothing g > 0.
        x_len: (B,) lengths in 1..N (default N); y_len: (B,) lengths in 1..M (default M).

    Returns:
        (B,) soft-DTW values, differentiable w.r.t. x and y (backward by the paper's
        Algorithm 2 over anti-diagonals).
    """
    _check_gamma(gamma)
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(
            f"x, y must be (B, N, D), (B, M, D); got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    x_len = _lengths(x_len, x.shape[0], x.shape[1], x.device)
    y_len = _lengths(y_len, y.shape[0], y.shape[1], y.device)
    if x.shape[0] == 0:
        return x.new_zeros(0)
    x, y = _masked(x, x_len), _masked(y, y_len)
    return _SoftDTWFromCost.apply(_pair_cost(x, y), x_len, y_len, gamma)


def _cross_cost(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean costs (N, M, A * C) of all pairs of x (A, N, D) and y (C, M, D)."""
    (a, n, dim), (c, m, _) = x.shape, y.shape
    cross = (x.reshape(a * n, dim) @ y.reshape(c * m, dim).T).view(a, n, c, m)  # (A, N, C, M)
    cost = _sq_norms(x).T[:, None, :, None] + _sq_norms(y).T[None, :, None, :]  # (N, M, A, C)
    cost = cost - 2 * cross.permute(1, 3, 0, 2)  # (N, M, A, C)
    return cost.clamp_min_(0).reshape(n, m, a * c)  # (N, M, A*C)


def soft_dtw_cross(
    x: Tensor,
    y: Tensor,
    gamma: float = 1.0,
    x_len: Tensor | None = None,
    y_len: Tensor | None = None,
    max_pairs: int = 4096,
) -> Tensor:
    """Soft-DTW of every pair (x_a, y_c): the (A, C) matrix of :func:`soft_dtw` values.

    Args:
        x: (A, N, D) series with lengths ``x_len`` (A,); y: (C, M, D) with ``y_len`` (C,).
        gamma: smoothing g > 0.
        max_pairs: pairs per wavefront batch; rows of x are sorted by length and each batch is
            cut to its longest series, so short series do not pay for long ones.

    Returns:
        (A, C) soft-DTW values (not differentiable: computed without the backward weights).
    """
    _check_gamma(gamma)
    if x.ndim != 3 or y.ndim != 3 or x.shape[2] != y.shape[2]:
        raise ValueError(
            f"x, y must be (A, N, D), (C, M, D); got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    x_len = _lengths(x_len, x.shape[0], x.shape[1], x.device)
    y_len = _lengths(y_len, y.shape[0], y.shape[1], y.device)
    n_x, n_y = x.shape[0], y.shape[0]
    out = x.new_empty((n_x, n_y))
    if n_x == 0 or n_y == 0:
        return out
    y = _masked(y, y_len)
    order = torch.argsort(x_len)
    rows = max(1, max_pairs // n_y)
    workspace = _Workspace()  # batches of similar shapes share buffers
    with torch.no_grad():
        for part in torch.split(order, rows):
            xs, xs_len = x[part], x_len[part]
            cost = _cross_cost(_masked(xs, xs_len), y)  # (N', M, a*C)
            pair_x = xs_len.repeat_interleave(n_y)  # (a*C,)
            pair_y = y_len.repeat(len(part))  # (a*C,)
            values, _ = _sdtw_wavefront(cost.div_(gamma), pair_x, pair_y, False, workspace)
            out[part] = values.view(len(part), n_y) * gamma
    return out


def soft_dtw_divergence(
    x: Tensor,
    y: Tensor,
    gamma: float = 1.0,
    x_len: Tensor | None = None,
    y_len: Tensor | None = None,
) -> Tensor:
    """Soft-DTW divergence sdtw(x, y) - (sdtw(x, x) + sdtw(y, y)) / 2 of paired series.

    Non-negative and zero iff x == y for the squared Euclidean cost (Blondel, Mensch & Vert,
    "Differentiable Divergences Between Time Series", AISTATS 2021). Shapes as :func:`soft_dtw`:
    x (B, N, D), y (B, M, D), lengths (B,); returns (B,).
    """
    xy = soft_dtw(x, y, gamma, x_len, y_len)
    xx = soft_dtw(x, x, gamma, x_len, x_len)
    yy = soft_dtw(y, y, gamma, y_len, y_len)
    return xy - (xx + yy) / 2


# --------------------------------------------------------------------------------------------
# Datasets of variable-length series
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Soft-DTW k-means
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusteringResult:
    """One fitted clustering: centroids (k, T_c, D), labels (n,), inertia and iterations run."""

    cluster_centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int


@dataclass(frozen=True)
class _Series:
    """A dataset on the compute device, sorted by length (shortest first), padding zeroed."""

    values: Tensor  # (n, T_max, D)
    lengths: Tensor  # (n,)
    order: np.ndarray  # (n,) original index of each sorted row


@dataclass(frozen=True)
class _Objective:
    """Per-centroid sum of soft-DTW to its members, its gradient and the alignment mass."""

    value: Tensor  # (k,) sum_i sdtw(c_k, x_i) over the members of cluster k
    grad: Tensor  # (k, T_c, D)
    mass: Tensor  # (k, T_c) sum over members and their frames of the expected alignment

    def where(self, mask: Tensor, other: _Objective) -> _Objective:
        """Entries of self for clusters in ``mask`` (k,), of other elsewhere."""
        return _Objective(
            torch.where(mask, self.value, other.value),
            torch.where(mask[:, None, None], self.grad, other.grad),
            torch.where(mask[:, None], self.mass, other.mass),
        )


def _row_batches(selected: Tensor, max_pairs: int) -> list[slice | Tensor]:
    """Batches of at most max_pairs of the selected rows (n,): slices when all are selected."""
    if bool(selected.all()):
        return [slice(i, i + max_pairs) for i in range(0, len(selected), max_pairs)]
    rows = selected.nonzero()[:, 0]
    return list(torch.split(rows, max_pairs)) if len(rows) else []


def _barycenter_objective(
    centers: Tensor,
    data: _Series,
    labels: Tensor,
    clusters: Tensor,
    gamma: float,
    max_pairs: int,
    workspace: _Workspace | None = None,
) -> _Objective:
    """Objective of the clusters in ``clusters`` (k,) bool; other clusters get zeros.

    With E_i = d sdtw(c, x_i) / d Delta the expected alignment of centroid c (T_c, D) to member
    x_i: grad_t = 2 sum_{i,j} E_i[t, j] (c_t - x_i[j]) = 2 (mass_t c_t - pull_t) with
    mass_t = sum_{i,j} E_i[t, j] and pull_t = sum_{i,j} E_i[t, j] x_i[j].
    """
    k, size, _ = centers.shape
    value, pulls, mass = (
        centers.new_zeros(k),
        torch.zeros_like(centers),
        centers.new_zeros((k, size)),
    )
    for rows in _row_batches(clusters[labels], max_pairs):
        y_len, lab = data.lengths[rows], labels[rows]
        y = data.values[rows][:, : int(y_len.max())]  # (B, M, D)
        x_len = torch.full_like(y_len, size)
        cost = _pair_cost(centers[lab], y, 1.0 / gamma, workspace)  # (T_c, M, B)
        sdtw, weights = _sdtw_wavefront(cost, x_len, y_len, True, workspace)
        grid = (size, y.shape[1])
        align = _sdtw_wavefront_grad(weights, torch.ones_like(sdtw), x_len, y_len, grid, workspace)
        value.index_add_(0, lab, sdtw * gamma)
        mass.index_add_(0, lab, align.sum(1).T)  # (B, T_c)
        align_bt = _take(workspace, "norms", (len(lab), *grid), y)  # (B, T_c, M), cost is spent
        align_bt.copy_(align.permute(2, 0, 1))
        pulls.index_add_(0, lab, torch.bmm(align_bt, y))  # (B, T_c, D)
    return _Objective(value, 2 * (mass[..., None] * centers - pulls), mass)


def _batch_dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-centroid inner products (k,) of two (k, T_c, D) tensors."""
    return (a * b).sum((1, 2))


def _lbfgs_direction(current: _Objective, history: list[tuple[Tensor, Tensor, Tensor]]) -> Tensor:
    """L-BFGS two-loop direction (k, T_c, D) for every centroid, preconditioned by 1 / (2 mass).

    sdtw is concave in the cost matrix Delta, so sum_i sdtw(c, x_i) lies below its tangent
    const + sum_i <E_i, Delta(c, x_i)>, a quadratic in c with Hessian 2 mass_t per frame t.
    Minimising that bound is the step -grad / (2 mass), a soft DBA step that cannot increase the
    objective: the initial inverse Hessian of the two-loop recursion.
    """
    q, alphas = current.grad.clone(), []
    for s, y, rho in reversed(history):
        alpha = rho * _batch_dot(s, q)
        q -= alpha[:, None, None] * y
        alphas.append(alpha)
    r = q / (2 * current.mass[..., None])
    for (s, y, rho), alpha in zip(history, reversed(alphas), strict=True):
        beta = rho * _batch_dot(y, r)
        r += (alpha - beta)[:, None, None] * s
    uphill = _batch_dot(current.grad, r) <= 0  # not a descent direction: fall back to the bound
    r[uphill] = current.grad[uphill] / (2 * current.mass[uphill][..., None])
    return -r


def _armijo_step(
    centers: Tensor,
    direction: Tensor,
    current: _Objective,
    evaluate: Callable[[Tensor, Tensor], _Objective],
    active: Tensor,
) -> tuple[Tensor, _Objective, Tensor]:
    """Backtracking line search per centroid with Armijo's sufficient decrease.

    Returns the new centroids, their objective and the mask (k,) of centroids that moved.
    """
    slope = _batch_dot(current.grad, direction)  # (k,) < 0
    step = torch.ones_like(slope)
    pending, result, objective = active.clone(), centers.clone(), current
    for _ in range(_MAX_BACKTRACKS):
        trial = centers + step[:, None, None] * direction
        found = evaluate(trial, pending)
        ok = pending & (found.value <= current.value + 1e-4 * step * slope)
        result = torch.where(ok[:, None, None], trial, result)
        objective = found.where(ok, objective)
        pending &= ~ok
        if not bool(pending.any()):
            break
        # minimiser of the quadratic through f(0), f'(0) and f(step), kept in [step/10, step/2]
        excess = (found.value - current.value - step * slope).clamp_min(1e-30)
        shrunk = (-slope * step**2 / (2 * excess)).clamp(0.1 * step, 0.5 * step)
        step = torch.where(pending, shrunk, step)
    return result, objective, active & ~pending


def _lbfgs_barycenters(
    centers: Tensor,
    evaluate: Callable[[Tensor, Tensor], _Objective],
    max_iter: int,
    ftol: float,
    memory: int = 10,
) -> Tensor:
    """Minimise every centroid's objective at once by L-BFGS, each with its own line search.

    A centroid stops when an iteration lowers its objective by less than ``ftol`` relative
    (scipy's L-BFGS-B ``ftol`` test, which tslearn uses with 1e-3) or its line search fails;
    stopped centroids no longer cost any soft-DTW evaluation.
    """
    active = torch.ones(centers.shape[0], dtype=torch.bool, device=centers.device)
    current = evaluate(centers, active)
    history: list[tuple[Tensor, Tensor, Tensor]] = []
    for _ in range(max_iter):
        direction = _lbfgs_direction(current, history)
        new_centers, found, moved = _armijo_step(centers, direction, current, evaluate, active)
        s, y = new_centers - centers, found.grad - current.grad
        s, y = s * moved[:, None, None], y * moved[:, None, None]
        curvature = _batch_dot(s, y)
        rho = torch.where(curvature > 0, 1.0 / curvature.clamp_min(1e-30), 0.0)
        history = [*history[-(memory - 1) :], (s, y, rho)] if memory > 1 else []
        scale = torch.maximum(current.value.abs(), found.value.abs()).clamp_min(1.0)
        active = moved & ((current.value - found.value) / scale > ftol)
        centers, current = new_centers, found.where(moved, current)
        if not bool(active.any()):
            break
    return centers


class SoftDTWKMeans:
    """k-means of variable-length multivariate series under soft-DTW, batched in torch.

    Same objective as ``tslearn.clustering.TimeSeriesKMeans(metric="softdtw")``: each series goes
    to the centroid of smallest sdtw_gamma; each centroid minimises the sum of sdtw_gamma to its
    members; ``inertia_`` is tslearn's mean over series of sdtw(x_i, c_{l_i})^2. Centroids have
    tslearn's length: the longest training series for k-means++, the init array's length
    otherwise. Differences from tslearn:

    - all centroids are updated at once by a batched L-BFGS (:func:`_lbfgs_barycenters`, one
      line search per centroid, preconditioned by the soft DBA bound) instead of one scipy
      L-BFGS-B per centroid;
    - ``inertia_`` belongs to the returned centroids and labels (tslearn's comes from the
      assignment before the last barycentre update);
    - an empty cluster is re-seeded with the series farthest from its own centroid (taken from
      clusters of 2 or more, resampled to the centroid length) instead of restarting the fit.

    Args:
        n_clusters: k. gamma: soft-DTW smoothing (> 0).
        max_iter: k-means iterations (assignment + barycentre update).
        tol: stop when the inertia changes by less than this between iterations.
        n_init: k-means++ restarts; the lowest inertia wins (1 with an init array).
        max_iter_barycenter: L-BFGS iterations per k-means iteration.
        tol_barycenter: a centroid's L-BFGS stops when an iteration lowers its objective by less
            than this, relative (scipy's ftol test; tslearn uses 1e-3 with up to 100 iterations,
            which scipy's line search turns into more progress than ours gets at 1e-3).
        init: "k-means++" (tslearn's soft-DTW variant) or initial centroids (k, T_c, D), which
            may be padded with trailing all-NaN rows (resampled to T_c like tslearn does).
        random_state: seed of the k-means++ draws.
        device, dtype: where and in which precision to compute (float32 by default).
        batch_mb: memory per batch of series-centroid pairs, in MB (default by device type:
            ``DEFAULT_BATCH_MB``).
        n_threads: torch intra-op threads while fitting or predicting (set process-wide for
            the call, then restored); None leaves torch's setting alone. The wavefront issues
            ~100,000 small ops per fit, each an OpenMP barrier: on a 2-core machine 2 threads
            gain ~1.5x when it is idle and lose up to 20x when another job holds a core, hence 1.
        verbose: show a progress bar over the iterations.
    """

    def __init__(
        self,
        n_clusters: int = 10,
        gamma: float = 1.0,
        max_iter: int = 50,
        tol: float = 1e-6,
        n_init: int = 1,
        max_iter_barycenter: int = 20,
        tol_barycenter: float = 1e-4,
        init: str | np.ndarray = "k-means++",
        random_state: int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_mb: float | None = None,
        n_threads: int | None = 1,
        verbose: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.max_iter_barycenter = max_iter_barycenter
        self.tol_barycenter = tol_barycenter
        self.init = init
        self.random_state = random_state
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_mb = batch_mb or DEFAULT_BATCH_MB.get(self.device.type, 64.0)
        self.n_threads = n_threads
        self.verbose = verbose

    # -- public API ---------------------------------------------------------------------------

    def fit(self, X: ArrayLike) -> SoftDTWKMeans:
        """Cluster X: a sequence of (T_i, D) arrays or a NaN-padded (n, T, D) array."""
        data = self._prepare(X)
        rng = np.random.default_rng(self.random_state)
        n_init = 1 if isinstance(self.init, np.ndarray) else self.n_init
        results = []
        with _torch_threads(self.n_threads):
            for run in range(n_init):
                result = self._fit_one(data, self._initial_centers(data, rng))
                logger.info(
                    "init %d/%d: inertia %.6g after %d iterations",
                    run + 1,
                    n_init,
                    result.inertia,
                    result.n_iter,
                )
                results.append(result)
        best = min(results, key=lambda r: r.inertia)
        self.cluster_centers_ = best.cluster_centers + self._shift
        self.labels_ = best.labels
        self.inertia_ = best.inertia
        self.n_iter_ = best.n_iter
        return self

    def init_centers(self, X: ArrayLike) -> np.ndarray:
        """The centroids (k, T_c, D) from which the first initialisation of ``fit(X)`` starts."""
        data = self._prepare(X)
        with _torch_threads(self.n_threads):
            centers = self._initial_centers(data, np.random.default_rng(self.random_state))
        return centers.double().cpu().numpy() + self._shift

    def fit_predict(self, X: ArrayLike) -> np.ndarray:
        """Fit and return the labels (n,) of the training series."""
        return self.fit(X).labels_

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Soft-DTW (n, k) of each series of X to each centroid."""
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError("SoftDTWKMeans is not fitted yet: call fit() first")
        values, lengths = as_padded_dataset(X)
        if values.shape[2] != self.cluster_centers_.shape[2]:
            raise ValueError(
                f"X has {values.shape[2]} features, the centroids {self.cluster_centers_.shape[2]}"
            )
        data = self._to_device(values, lengths)
        centers = self._tensor(self.cluster_centers_ - self._shift)
        with _torch_threads(self.n_threads):
            dist = self._cross(data.values, data.lengths, centers, None)
        out = np.empty((len(values), self.n_clusters))
        out[data.order] = dist.double().cpu().numpy()
        return out

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Index (n,) of the closest centroid (smallest soft-DTW) of each series of X."""
        return self.transform(X).argmin(axis=1)

    # -- steps --------------------------------------------------------------------------------

    def _check_params(self, n_series: int, n_features: int) -> None:
        """Reject parameters that cannot work on n_series series of n_features features."""
        _check_gamma(self.gamma)
        if not 1 <= self.n_clusters <= n_series:
            raise ValueError(
                f"n_clusters must lie in 1..{n_series} (the number of series), "
                f"got {self.n_clusters}"
            )
        for name in ("max_iter", "n_init", "max_iter_barycenter", "batch_mb", "n_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if isinstance(self.init, np.ndarray):
            expected = (self.n_clusters, n_features)
            if self.init.ndim != 3 or (self.init.shape[0], self.init.shape[2]) != expected:
                raise ValueError(
                    f"init must have shape ({expected[0]}, T_c, {expected[1]}), "
                    f"got {self.init.shape}"
                )
        elif self.init != "k-means++":
            raise ValueError(f"init must be 'k-means++' or an array, got {self.init!r}")

    def _prepare(self, X: ArrayLike) -> _Series:
        """Validate X and the parameters, fix the shift (training mean frame), move to device."""
        values, lengths = as_padded_dataset(X)
        self._check_params(len(values), values.shape[2])
        self._shift = values.sum(axis=(0, 1)) / lengths.sum()  # (D,) mean frame
        return self._to_device(values, lengths)

    def _tensor(self, values: np.ndarray) -> Tensor:
        """A numpy array as a tensor of the configured device and dtype."""
        return torch.as_tensor(values, dtype=self.dtype, device=self.device)

    def _to_device(self, values: np.ndarray, lengths: np.ndarray) -> _Series:
        """Shift by the training mean frame, sort by length and move to the device."""
        order = np.argsort(lengths, kind="stable")
        shifted = values[order] - self._shift  # (n, T_max, D)
        shifted[np.arange(shifted.shape[1])[None, :] >= lengths[order][:, None]] = 0.0
        lengths_t = torch.as_tensor(lengths[order], device=self.device)
        return _Series(self._tensor(shifted), lengths_t, order)

    def _initial_centers(self, data: _Series, rng: np.random.Generator) -> Tensor:
        """Initial centroids (k, T_c, D) in shifted coordinates."""
        if isinstance(self.init, np.ndarray):
            size = self.init.shape[1]
            rows = [_strip_padding(c, i) - self._shift for i, c in enumerate(self.init)]
            return self._tensor(np.stack([resample(c, size) for c in rows]))
        picks = self._kmeans_plus_plus(data, rng)
        size = data.values.shape[1]
        rows = [data.values[i, : data.lengths[i]].double().cpu().numpy() for i in picks]
        return self._tensor(np.stack([resample(c, size) for c in rows]))

    def _kmeans_plus_plus(self, data: _Series, rng: np.random.Generator) -> list[int]:
        """Rows chosen by tslearn's greedy k-means++ with soft-DTW (2 + ln k trials per seed).

        Seeds are drawn with probability proportional to max(sdtw, 0)^2 to the closest seed so
        far (soft-DTW is negative near identical series); of the trials, the one leaving the
        smallest total potential is kept.
        """
        n, trials = len(data.lengths), 2 + int(math.log(self.n_clusters))
        picks = [int(rng.integers(n))]
        closest = self._potential(data, picks)[:, 0]  # (n,)
        for _ in range(1, self.n_clusters):
            draws = rng.random(trials) * float(closest.sum())
            cumulative = torch.cumsum(closest.double(), 0).cpu().numpy()
            candidates = np.minimum(np.searchsorted(cumulative, draws), n - 1).tolist()
            potential = torch.minimum(closest[:, None], self._potential(data, candidates))
            best = int(potential.sum(0).argmin())
            picks.append(candidates[best])
            closest = potential[:, best]
        return picks

    def _potential(self, data: _Series, rows: list[int]) -> Tensor:
        """max(sdtw, 0)^2 (n, len(rows)) of every series to the series ``rows``."""
        idx = torch.as_tensor(rows, device=self.device)
        seeds = data.values[idx, : int(data.lengths[idx].max())]
        dist = self._cross(data.values, data.lengths, seeds, data.lengths[idx])
        return dist.clamp_min(0) ** 2

    def _cross(self, x: Tensor, x_len: Tensor, y: Tensor, y_len: Tensor | None) -> Tensor:
        """Soft-DTW (A, C) of series x to series y in batches of ``batch_mb``."""
        pairs = _pairs_per_batch(self.batch_mb, x.element_size(), y.shape[1], x.shape[1])
        return soft_dtw_cross(x, y, self.gamma, x_len, y_len, pairs)

    def _fit_one(self, data: _Series, centers: Tensor) -> ClusteringResult:
        """Lloyd iterations from ``centers`` until the inertia settles or max_iter is reached."""
        previous, n_iter, workspace = math.inf, 0, _Workspace()
        steps = tqdm(total=self.max_iter, desc="soft-DTW k-means", disable=not self.verbose)
        for n_iter in range(1, self.max_iter + 1):
            labels, inertia, centers = self._assign(data, centers)
            centers = self._update(data, labels, centers, workspace)
            steps.update()
            steps.set_postfix(inertia=f"{inertia:.6g}")
            logger.debug("iteration %d: inertia %.6g", n_iter, inertia)
            if abs(previous - inertia) < self.tol:
                break
            previous = inertia
        steps.close()
        labels, inertia, centers = self._assign(data, centers)
        labels_np = np.empty(len(labels), dtype=np.int64)
        labels_np[data.order] = labels.cpu().numpy()
        return ClusteringResult(centers.double().cpu().numpy(), labels_np, inertia, n_iter)

    def _assign(self, data: _Series, centers: Tensor) -> tuple[Tensor, float, Tensor]:
        """Labels (n,), inertia mean_i sdtw(x_i, c_{l_i})^2 and centroids (re-seeded if empty)."""
        dist = self._cross(data.values, data.lengths, centers, None)
        labels = dist.argmin(1)
        if torch.bincount(labels, minlength=self.n_clusters).min() == 0:
            labels, dist, centers = self._reseed_empty(data, dist, labels, centers)
        own = dist.gather(1, labels[:, None])[:, 0]  # (n,)
        return labels, float((own.double() ** 2).mean()), centers

    def _reseed_empty(
        self, data: _Series, dist: Tensor, labels: Tensor, centers: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Give each empty cluster the series farthest from its own centroid (resampled)."""
        counts = torch.bincount(labels, minlength=self.n_clusters)
        own = dist.gather(1, labels[:, None])[:, 0].clone()  # (n,)
        centers, labels = centers.clone(), labels.clone()
        for cluster in (counts == 0).nonzero()[:, 0].tolist():
            row = int(torch.where(counts[labels] > 1, own, -math.inf).argmax())
            series = data.values[row, : data.lengths[row]].double().cpu().numpy()
            centers[cluster] = self._tensor(resample(series, centers.shape[1]))
            counts[labels[row]] -= 1
            counts[cluster] = 1
            labels[row] = cluster
            own[row] = -math.inf
            logger.warning(
                "cluster %d was empty: re-seeded with series %d", cluster, int(data.order[row])
            )
        dist = self._cross(data.values, data.lengths, centers, None)
        return labels, dist, centers

    def _update(
        self, data: _Series, labels: Tensor, centers: Tensor, workspace: _Workspace
    ) -> Tensor:
        """Barycentres: all centroids at once by L-BFGS on the sum of soft-DTW to the members."""

        def evaluate(trial: Tensor, clusters: Tensor) -> _Objective:
            """Objective of the clusters in the mask ``clusters`` at centroids ``trial``."""
            pairs = _pairs_per_batch(
                self.batch_mb, trial.element_size(), trial.shape[1], data.values.shape[1]
            )
            return _barycenter_objective(
                trial, data, labels, clusters, self.gamma, pairs, workspace
            )

        return _lbfgs_barycenters(centers, evaluate, self.max_iter_barycenter, self.tol_barycenter)


# --------------------------------------------------------------------------------------------
# Reference engine
# --------------------------------------------------------------------------------------------


def fit_tslearn(
    X: ArrayLike,
    k: int,
    gamma: float = 1.0,
    init_centroids: np.ndarray | None = None,
    max_iter: int = 50,
    random_state: int | None = None,
    max_iter_barycenter: int = 100,
    tol: float = 1e-6,
) -> ClusteringResult:
    """Fit ``tslearn.clustering.TimeSeriesKMeans(metric="softdtw")``, the reference engine.

    X is validated as in :class:`SoftDTWKMeans`. ``init_centroids`` (k, T_c, D) or None for
    tslearn's k-means++. The returned inertia is tslearn's ``inertia_``: mean sdtw^2 at the
    assignment before the last barycentre update (its labels are reassigned to the final
    centroids). Raises RuntimeError if every tslearn attempt hit an empty cluster.
    """
    from tslearn.clustering import TimeSeriesKMeans  # optional: only the reference engine

    values, lengths = as_padded_dataset(X)
    padded = values.copy()
    padded[np.arange(values.shape[1])[None, :] >= lengths[:, None]] = np.nan  # tslearn padding
    model = TimeSeriesKMeans(
        n_clusters=k,
        metric="softdtw",
        metric_params={"gamma": gamma},
        max_iter=max_iter,
        max_iter_barycenter=max_iter_barycenter,
        tol=tol,
        init="k-means++" if init_centroids is None else np.asarray(init_centroids, np.float64),
        random_state=random_state,
    )
    model.fit(padded)
    if not np.isfinite(model.inertia_):
        raise RuntimeError(f"tslearn found an empty cluster in every attempt (k={k})")
    return ClusteringResult(
        np.asarray(model.cluster_centers_),
        np.asarray(model.labels_, dtype=np.int64),
        float(model.inertia_),
        int(model.n_iter_),
    )


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


def sdtw_cross(a: list[np.ndarray], b: list[np.ndarray], gamma: float, device: str) -> np.ndarray:
    """Soft-DTW of every pair (a_i, b_j): (len(a), len(b)) float64, via agcc.sdtw.soft_dtw_cross."""

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
    div = cross - 0.5 * (self_[:, None] + self_[None, :])
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
