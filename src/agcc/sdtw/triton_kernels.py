"""Triton kernels of the fused soft-DTW path (:mod:`agcc.sdtw.fused`): one launch per pass.

Each program owns ``BLOCK`` pairs of a batch, one lane each, and walks their cost matrices cell
by cell, row-major: R(i, j - 1) and R(i - 1, j - 1) stay in registers, R(i - 1, j) is read from
the row written before. The (n, m, B) layout (pairs last) makes every load and store of a step
one contiguous run of ``BLOCK`` values. A program stops at its own longest pair, so batches
sorted by length waste little on padding. Importing this module imports triton; on a machine
without a GPU the kernels run under ``TRITON_INTERPRET=1`` (tests only: slow).
"""

from __future__ import annotations

import triton
import triton.language as tl

#: Lower bound of an exponent in the softmin, as in the torch wavefront (exp(-80) ~ 1.8e-35).
EXP_FLOOR = tl.constexpr(-80.0)


#: Sizes that change from batch to batch: not specialised on (Triton would otherwise compile a
#: variant for every size that is 1 or a multiple of 16).
_SIZES = ["n_pairs", "n_cols", "row_stride"]


@triton.jit(do_not_specialize=_SIZES)
def sdtw_forward_kernel(
    cost,
    r_out,
    x_len,
    y_len,
    values,
    n_pairs,
    n_cols,
    row_stride,
    BLOCK: tl.constexpr,
):
    """Values R(n_b, m_b) of the recursion on ``cost`` (n, m, B), in units of gamma.

    ``r_out`` receives R(i, j) at ((i - 1) * row_stride + (j - 1)) * B + b: with row_stride m
    the whole matrix (kept for the gradient), with row_stride 0 a single row that is
    overwritten in place (values only).
    """
    lanes = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = lanes < n_pairs
    lanes64 = lanes.to(tl.int64)
    xl = tl.load(x_len + lanes, mask=live, other=1).to(tl.int32)
    yl = tl.load(y_len + lanes, mask=live, other=1).to(tl.int32)
    n_max = tl.max(xl, axis=0)
    m_max = tl.max(yl, axis=0)
    inf = float("inf")
    out = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(1, n_max + 1):
        left = tl.full([BLOCK], inf, dtype=tl.float32)
        diag = tl.where(i == 1, tl.zeros([BLOCK], dtype=tl.float32), left)
        for j in range(1, m_max + 1):
            cell = ((i - 1) * n_cols + (j - 1)).to(tl.int64) * n_pairs + lanes64
            d = tl.load(cost + cell, mask=live, other=0.0).to(tl.float32)
            above = ((i - 2) * row_stride + (j - 1)).to(tl.int64) * n_pairs + lanes64
            up = tl.load(r_out + above, mask=live & (i > 1), other=inf).to(tl.float32)
            low = tl.minimum(tl.minimum(diag, up), left)
            total = (
                tl.exp(tl.maximum(low - diag, EXP_FLOOR))
                + tl.exp(tl.maximum(low - up, EXP_FLOOR))
                + tl.exp(tl.maximum(low - left, EXP_FLOOR))
            )
            r = d + low - tl.log(total)
            here = ((i - 1) * row_stride + (j - 1)).to(tl.int64) * n_pairs + lanes64
            tl.store(r_out + here, r, mask=live)
            out = tl.where((xl == i) & (yl == j), r, out)
            diag = up
            left = r
    tl.store(values + lanes, out, mask=live)


@triton.jit(do_not_specialize=_SIZES[:2])
def sdtw_backward_kernel(
    cost,
    r,
    grad_out,
    x_len,
    y_len,
    e_out,
    n_pairs,
    n_cols,
    BLOCK: tl.constexpr,
):
    """Expected alignments E (n, m, B) = d R(n_b, m_b) / d cost, times grad_out (B,).

    E(i, j) = sum over the successors s of (i, j) inside the pair's lengths of
    E(s) exp(R(s) - cost(s) - R(i, j)), and E(n_b, m_b) = grad_out_b (Algorithm 2 of Cuturi &
    Blondel); cells outside the lengths get 0. Rows run from the last up, columns from the last
    left; row i + 1 of E is read back from ``e_out``.
    """
    lanes = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = lanes < n_pairs
    lanes64 = lanes.to(tl.int64)
    xl = tl.load(x_len + lanes, mask=live, other=1).to(tl.int32)
    yl = tl.load(y_len + lanes, mask=live, other=1).to(tl.int32)
    g = tl.load(grad_out + lanes, mask=live, other=0.0).to(tl.float32)
    n_max = tl.max(xl, axis=0)
    m_max = tl.max(yl, axis=0)
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    for ii in range(0, n_max):
        i = n_max - ii
        # cell (i, j + 1) and cell (i + 1, j + 1): carried from the previous column
        e_right, r_right, d_right = zero, zero, zero
        e_corner, r_corner, d_corner = zero, zero, zero
        for jj in range(0, m_max):
            j = m_max - jj
            inside = live & (i <= xl) & (j <= yl)
            below_ok = inside & (i + 1 <= xl)
            right_ok = inside & (j + 1 <= yl)
            corner_ok = below_ok & (j + 1 <= yl)
            cell = ((i - 1) * n_cols + (j - 1)).to(tl.int64) * n_pairs + lanes64
            below = (i * n_cols + (j - 1)).to(tl.int64) * n_pairs + lanes64
            r_ij = tl.load(r + cell, mask=inside, other=0.0).to(tl.float32)
            d_ij = tl.load(cost + cell, mask=inside, other=0.0).to(tl.float32)
            r_below = tl.load(r + below, mask=below_ok, other=0.0).to(tl.float32)
            d_below = tl.load(cost + below, mask=below_ok, other=0.0).to(tl.float32)
            e_below = tl.load(e_out + below, mask=below_ok, other=0.0).to(tl.float32)
            e = tl.where(below_ok, e_below * tl.exp(r_below - d_below - r_ij), zero)
            e += tl.where(right_ok, e_right * tl.exp(r_right - d_right - r_ij), zero)
            e += tl.where(corner_ok, e_corner * tl.exp(r_corner - d_corner - r_ij), zero)
            e = tl.where((xl == i) & (yl == j), g, e)
            e = tl.where(inside, e, zero)
            tl.store(e_out + cell, e, mask=live)
            e_corner, r_corner, d_corner = e_below, r_below, d_below
            e_right, r_right, d_right = e, r_ij, d_ij
