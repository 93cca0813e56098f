"""Soft-DTW values and gradients: the batched anti-diagonal (wavefront) DP and its backward.

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
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

import agcc.sdtw.fused as fused

#: A tensor or a numpy array (the divergence rule serves both).
T = TypeVar("T", Tensor, np.ndarray)

#: Optional lengths (B,) of a batch of series; None means every series is full length.
Lengths = Tensor | None

_EXP_FLOOR = -80.0


def _pairs_per_batch(batch_mb: float, itemsize: int, n: int, m: int) -> int:
    """Pairs of an n x m grid whose gradient pass fits in batch_mb MB.

    Per pair: 3 n m values for the costs and their intermediates and the 4 (n + m + 3)(n + 2)
    factored softmin weights.
    """
    per_pair = 3 * n * m + 4 * (n + m + 3) * (n + 2)
    return max(1, int(batch_mb * 2**20 / (itemsize * per_pair)))


class _Workspace:
    """Buffers kept across the soft-DTW batches of one fit, by name.

    On CPU a fresh tensor above glibc's 32 MB mmap threshold is page-faulted in on first write,
    at about the cost of the arithmetic done on it; reused buffers are already mapped.
    """

    def __init__(self) -> None:
        """An empty workspace."""
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
        ctx.fused = fused.wanted("auto", cost)
        scaled = cost / gamma
        if ctx.fused:
            values, saved = fused.forward(scaled, x_len, y_len, keep)
            saved = torch.stack([scaled, saved]) if keep else None
        else:
            values, saved = _sdtw_wavefront(scaled, x_len, y_len, keep_weights=keep)
        if keep:
            ctx.save_for_backward(saved, x_len, y_len)
            ctx.grid = cost.shape[:2]
        return values * gamma

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        """Expected alignment matrices scaled by the incoming gradient."""
        saved, x_len, y_len = ctx.saved_tensors
        if ctx.fused:  # saved = (scaled costs, R)
            return fused.backward(saved[0], saved[1], grad_out, x_len, y_len), None, None, None
        grad = _sdtw_wavefront_grad(saved, grad_out.contiguous(), x_len, y_len, ctx.grid)
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
    x: Tensor, y: Tensor, gamma: float = 1.0, x_len: Lengths = None, y_len: Lengths = None
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
    x_len: Lengths = None,
    y_len: Lengths = None,
    max_pairs: int = 4096,
    kernel: str = "auto",
) -> Tensor:
    """Soft-DTW of every pair (x_a, y_c): the (A, C) matrix of :func:`soft_dtw` values.

    Args:
        x: (A, N, D) series with lengths ``x_len`` (A,); y: (C, M, D) with ``y_len`` (C,).
        gamma: smoothing g > 0.
        max_pairs: pairs per batch; rows of x are sorted by length and each batch is cut to its
            longest series, so short series do not pay for long ones.
        kernel: "auto" (the fused Triton kernel on CUDA when available, else the wavefront),
            "fused" or "wavefront" (:func:`agcc.sdtw.fused.wanted`).

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
    use_fused = fused.wanted(kernel, x)
    order = torch.argsort(x_len)
    rows = max(1, max_pairs // n_y)
    workspace = _Workspace()  # batches of similar shapes share buffers
    with torch.no_grad():
        for part in torch.split(order, rows):
            xs, xs_len = x[part], x_len[part]
            cost = _cross_cost(_masked(xs, xs_len), y).div_(gamma)  # (N', M, a*C)
            pair_x = xs_len.repeat_interleave(n_y)  # (a*C,)
            pair_y = y_len.repeat(len(part))  # (a*C,)
            if use_fused:
                values, _ = fused.forward(cost, pair_x, pair_y, False)
            else:
                values, _ = _sdtw_wavefront(cost, pair_x, pair_y, False, workspace)
            out[part] = values.view(len(part), n_y) * gamma
    return out


def soft_dtw_divergence(
    x: Tensor, y: Tensor, gamma: float = 1.0, x_len: Lengths = None, y_len: Lengths = None
) -> Tensor:
    """Soft-DTW divergence sdtw(x, y) - (sdtw(x, x) + sdtw(y, y)) / 2 of paired series.

    Non-negative and zero iff x == y for the squared Euclidean cost (Blondel, Mensch & Vert,
    "Differentiable Divergences Between Time Series", AISTATS 2021). Shapes as :func:`soft_dtw`:
    x (B, N, D), y (B, M, D), lengths (B,); returns (B,).
    """
    xy = soft_dtw(x, y, gamma, x_len, y_len)
    xx = soft_dtw(x, x, gamma, x_len, x_len)
    yy = soft_dtw(y, y, gamma, y_len, y_len)
    return divergence(xy, xx, yy)


def divergence(xy: T, xx: T, yy: T) -> T:
    """The soft-DTW divergence rule xy - (xx + yy) / 2 from sdtw(x, y), sdtw(x, x), sdtw(y, y).

    Works elementwise on tensors or numpy arrays that broadcast together.
    """
    return xy - (xx + yy) / 2
