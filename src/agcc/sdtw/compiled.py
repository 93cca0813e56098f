"""Soft-DTW compiled for the CPU with numba: SIMD over lanes of series, tasks in parallel.

The recursion is the one of :mod:`agcc.sdtw.kernel` (Cuturi & Blondel 2017), in units of gamma,

    R(i, j) = d(i, j) / g + softmin_1(R(i-1, j-1), R(i-1, j), R(i, j-1)),

with rows i = 1..n the frames of a centroid (or any fixed series) and columns j = 1..m_l the
frames of series l. A *block* holds ``L`` series ("lanes") packed lane-last (see the Kernels
section) and is paired with one centroid: every cell (i, j) is computed for the L lanes at once
by a loop that LLVM turns into SIMD instructions. That needs ``exp`` and ``log`` without library
calls, so both are written out here (Cephes' polynomials, within about 1 ulp in float32 and
float64). The squared distances and the barycentre's pull are matrix products, done by BLAS.
Blocks are independent tasks run by a parallel loop; every sum over lanes or blocks runs in a
fixed order, so a result does not depend on the number of threads.

The gradient is the expected alignment E of the paper's Algorithm 2, computed from the softmin
weights kept by the forward pass; from it each block returns, per centroid frame t, the mass
sum_{l,j} E_l(t, j) and the pull sum_{l,j} E_l(t, j) y_l(j), which give the barycentre gradient
2 (mass_t c_t - pull_t).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic, overload


def _cache_dir() -> str:
    """Where numba caches the compiled kernels: NUMBA_CACHE_DIR if set, else agcc/numba in the
    user's cache folder (XDG_CACHE_HOME, default ~/.cache). Never beside this file: the cache
    would land in the package's __pycache__, which the pipeline hashes as a code dependency."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agcc" / "numba"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:  # no writable home (a container user): the system's temporary folder
        folder = Path(tempfile.gettempdir()) / "agcc-numba"
    return str(folder)


# read by numba when each cached kernel below is decorated
numba.config.CACHE_DIR = _cache_dir()

#: Series per block ("lanes") for float32 and float64 data: 4 AVX2 registers per row step, so
#: that the recursion's chain along a row (each cell waits for its left neighbour) keeps 4
#: independent vectors in flight (16 lanes measured ~10 % slower, 64 no faster).
LANES = {np.dtype(np.float32): 32, np.dtype(np.float64): 16}

#: Blocks per scheduling chunk of the parallel loops: threads take chunks as they finish, so
#: a thread that the OS holds back (another job on its core) does not stall the loop.
CHUNK = 2

#: exp(x) of softmin arguments below this is taken at this value (as the torch wavefront does).
EXP_FLOOR = -80.0

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453

# error_model "numpy": no zero-division checks, which would keep LLVM from vectorising.
_INLINE = {"nogil": True, "error_model": "numpy"}


@intrinsic
def _bits_as_float(typingctx: object, bits: types.Type) -> tuple | None:
    """Reinterpret an int32 (int64) as the float32 (float64) with the same bits."""
    if bits == types.int32:
        return types.float32(bits), lambda ctx, b, sig, args: b.bitcast(args[0], ir.FloatType())
    if bits == types.int64:
        return types.float64(bits), lambda ctx, b, sig, args: b.bitcast(args[0], ir.DoubleType())
    return None


def _exp(x: float) -> float:
    """exp(max(x, EXP_FLOOR)) for x <= 0, compiled per float type (see the overload)."""
    raise NotImplementedError("numba-only: call from compiled code")


def _tiny(x: float) -> float:
    """The smallest weight or alignment kept, in the float type of x (see the overload)."""
    raise NotImplementedError("numba-only: call from compiled code")


def _log13(t: float) -> float:
    """log(t) for t in [1, 3], compiled per float type (see the overload)."""
    raise NotImplementedError("numba-only: call from compiled code")


@numba.njit(inline="always", **_INLINE)
def _exp32(x: np.float32) -> np.float32:
    """Cephes expf: x = k ln 2 + r, |r| <= ln(2) / 2, a degree-6 polynomial, times 2^k."""
    x = max(x, np.float32(EXP_FLOOR))
    k = np.floor(x * np.float32(_LOG2E) + np.float32(0.5))
    r = x - k * np.float32(0.693359375) - k * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)
    p = (p * r + np.float32(8.3334519073e-3)) * r + np.float32(4.1665795894e-2)
    p = (p * r + np.float32(1.6666665459e-1)) * r + np.float32(5.0000001201e-1)
    y = p * (r * r) + r + np.float32(1.0)
    return y * _bits_as_float(np.int32((np.int32(k) + np.int32(127)) << np.int32(23)))


@numba.njit(inline="always", **_INLINE)
def _exp64(x: np.float64) -> np.float64:
    """Cephes exp: x = k ln 2 + r, a (2, 3) Pade form in r^2, times 2^k."""
    x = max(x, EXP_FLOOR)
    k = np.floor(x * _LOG2E + 0.5)
    r = x - k * 6.93145751953125e-1 - k * 1.42860682030941723212e-6
    rr = r * r
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr + 1.0)
    qx = (3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
    qx = (qx + 2.27265548208155028766e-1) * rr
    y = 1.0 + 2.0 * px / (qx + 2.0 - px)
    return y * _bits_as_float(np.int64((np.int64(k) + np.int64(1023)) << np.int64(52)))


@numba.njit(inline="always", **_INLINE)
def _log13_32(t: np.float32) -> np.float32:
    """log t, t in [1, 3]: t = 2^e u with u in [1/sqrt 2, sqrt 2], 2 atanh((u-1)/(u+1)) series."""
    huge, big = t > np.float32(2.828427), t > np.float32(1.4142135)
    e = np.float32(2.0) if huge else (np.float32(1.0) if big else np.float32(0.0))
    u = t * (np.float32(0.25) if huge else (np.float32(0.5) if big else np.float32(1.0)))
    z = (u - np.float32(1.0)) / (u + np.float32(1.0))
    z2 = z * z
    p = (np.float32(1.0 / 9.0) * z2 + np.float32(1.0 / 7.0)) * z2 + np.float32(1.0 / 5.0)
    p = (p * z2 + np.float32(1.0 / 3.0)) * z2 + np.float32(1.0)
    return e * np.float32(_LN2) + np.float32(2.0) * z * p


@numba.njit(inline="always", **_INLINE)
def _log13_64(t: np.float64) -> np.float64:
    """log t, t in [1, 3], as :func:`_log13_32` with the series to z^20 (|z| <= 0.172)."""
    huge, big = t > 2.8284271247461903, t > 1.4142135623730951
    e = 2.0 if huge else (1.0 if big else 0.0)
    u = t * (0.25 if huge else (0.5 if big else 1.0))
    z = (u - 1.0) / (u + 1.0)
    z2 = z * z
    p = (((1.0 / 21.0 * z2 + 1.0 / 19.0) * z2 + 1.0 / 17.0) * z2 + 1.0 / 15.0) * z2 + 1.0 / 13.0
    p = (((p * z2 + 1.0 / 11.0) * z2 + 1.0 / 9.0) * z2 + 1.0 / 7.0) * z2 + 1.0 / 5.0
    p = (p * z2 + 1.0 / 3.0) * z2 + 1.0
    return e * _LN2 + 2.0 * z * p


@overload(_exp, inline="always")
def _exp_overload(x):  # unannotated: numba compares it with the implementation's
    """The float32 or float64 implementation of :func:`_exp`."""
    if x == types.float32:
        return lambda x: _exp32(x)
    return (lambda x: _exp64(x)) if x == types.float64 else None


@overload(_tiny, inline="always")
def _tiny_overload(x):  # unannotated: numba compares it with the implementation's
    """1e-18 in float32, 1e-150 in float64: the product of two kept values stays a normal
    number, so the backward pass never computes with subnormals (each costs ~100 cycles)."""
    if x == types.float32:
        return lambda x: np.float32(1e-18)
    return (lambda x: 1e-150) if x == types.float64 else None


@overload(_log13, inline="always")
def _log13_overload(t):  # unannotated: numba compares it with the implementation's
    """The float32 or float64 implementation of :func:`_log13`."""
    if t == types.float32:
        return lambda t: _log13_32(t)
    return (lambda t: _log13_64(t)) if t == types.float64 else None


# ------------------------------------------------------------------------------------------
# Kernels. A block of L series with m frames (its longest) is stored lane-last and flat: y
# (D, m L) with frame j of lane l at column j L + l (zero beyond each length), yy (m, L) the
# squared frame norms / g. A centroid (n, D) enters as c2 = -2 c / g and cc = ||c_t||^2 / g,
# so that cost(i, j) = max(cc_i + yy_j + (c2 y)_ij, 0) with the product c2 y done by BLAS. A row
# of R or E is (m + 2, L), j = 0 and j = m + 1 its borders. Each row step is its own compiled
# function indexed only by loop counters: LLVM then checks once per row that its buffers do not
# overlap and runs the lane loop as SIMD.
# ------------------------------------------------------------------------------------------

_JIT = {"nogil": True, "cache": True, "error_model": "numpy"}


@numba.njit(**_JIT)
def _softmin_row(
    prev: np.ndarray, cur: np.ndarray, cross: np.ndarray, cc: float, yy: np.ndarray, m: int
) -> None:
    """Row i of R from row i-1 (``prev``); cross (m, L) the row's (c2 y) products. Forward
    only: the softmin from the sorted predecessors needs 2 exps."""
    zero = cc - cc
    one = _exp(zero)  # exactly 1, in the buffers' float type
    for j in range(1, m + 1):
        for lane in range(cur.shape[1]):
            a, b, c = prev[j - 1, lane], prev[j, lane], cur[j - 1, lane]
            low, high = min(a, min(b, c)), max(a, max(b, c))
            mid = max(min(a, b), min(max(a, b), c))
            total = one + _exp(low - mid) + _exp(low - high)
            cost = max(cross[j - 1, lane] + cc + yy[j - 1, lane], zero)
            cur[j, lane] = cost + low - _log13(total)


@numba.njit(**_JIT)
def _softmin_row_kept(
    prev: np.ndarray,
    cur: np.ndarray,
    cross: np.ndarray,
    cc: float,
    yy: np.ndarray,
    m: int,
    w_diag: np.ndarray,
    w_up: np.ndarray,
    w_left: np.ndarray,
) -> None:
    """:func:`_softmin_row` that also keeps the weights (m + 2, L) of each cell's diagonal,
    upper and left predecessor (below :func:`_tiny` they are 0); the border j = m + 1 gets 0.
    Each predecessor's exp(low - x) is picked among 1, exp(low - mid), exp(low - high) by
    exact comparison, so ties get equal weights."""
    zero = cc - cc
    tiny, one = _tiny(zero), _exp(zero)
    for j in range(1, m + 1):
        for lane in range(cur.shape[1]):
            a, b, c = prev[j - 1, lane], prev[j, lane], cur[j - 1, lane]
            low, high = min(a, min(b, c)), max(a, max(b, c))
            mid = max(min(a, b), min(max(a, b), c))
            e_mid, e_high = _exp(low - mid), _exp(low - high)
            total = one + e_mid + e_high
            cost = max(cross[j - 1, lane] + cc + yy[j - 1, lane], zero)
            cur[j, lane] = cost + low - _log13(total)
            inv = one / total
            wa = inv * (one if a == low else (e_mid if a == mid else e_high))
            wb = inv * (one if b == low else (e_mid if b == mid else e_high))
            wc = inv * (one if c == low else (e_mid if c == mid else e_high))
            w_diag[j, lane] = wa if wa >= tiny else zero
            w_up[j, lane] = wb if wb >= tiny else zero
            w_left[j, lane] = wc if wc >= tiny else zero
    w_diag[m + 1] = 0.0
    w_up[m + 1] = 0.0
    w_left[m + 1] = 0.0


@numba.njit(**_JIT)
def _alignment_row(
    e_next: np.ndarray,
    e_cur: np.ndarray,
    w_diag: np.ndarray,
    w_up: np.ndarray,
    w_left: np.ndarray,
    seed: np.ndarray,
    m: int,
) -> None:
    """Row i of E (Algorithm 2) from row i+1: E(i, j) = E(i+1, j+1) w_diag(i+1, j+1)
    + E(i+1, j) w_up(i+1, j) + E(i, j+1) w_left(i, j+1) + seed(j) (w_diag, w_up of row i+1,
    w_left of row i); values below :func:`_tiny` are set to 0."""
    e_cur[m + 1] = 0.0
    zero = seed[0, 0] - seed[0, 0]
    tiny = _tiny(zero)
    for j in range(m, 0, -1):
        for lane in range(e_cur.shape[1]):
            e = e_next[j + 1, lane] * w_diag[j + 1, lane]
            e += e_next[j, lane] * w_up[j, lane]
            e += e_cur[j + 1, lane] * w_left[j + 1, lane]
            e += seed[j, lane]
            e_cur[j, lane] = e if e >= tiny else zero


@numba.njit(**_JIT)
def _block(
    y: np.ndarray, yy: np.ndarray, off: np.ndarray, off_yy: np.ndarray, b: int, m: int, lanes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Block b of the flat buffers: its series (D, m L) and squared norms (m, L)."""
    dim = (off[b + 1] - off[b]) // (m * lanes)
    return (
        y[off[b] : off[b + 1]].reshape((dim, m * lanes)),
        yy[off_yy[b] : off_yy[b + 1]].reshape((m, lanes)),
    )


@numba.njit(**_JIT)
def _forward(
    cross: np.ndarray, cc: np.ndarray, yy: np.ndarray, m: int, lanes: int, w: np.ndarray
) -> np.ndarray:
    """Rows 1..n of R of one block against one centroid, cross (n, m L) = c2 y; returns row
    n (m + 2, L). A non-empty ``w`` (n + 1, 3, m + 2, L) also gets the softmin weights
    (diagonal, upper, left), and w[n], below the last row, zeros."""
    n = cross.shape[0]
    prev, cur = np.empty((m + 2, lanes), yy.dtype), np.empty((m + 2, lanes), yy.dtype)
    prev[0] = 0.0
    prev[1:] = np.inf
    keep = w.shape[0] > 0
    if keep:
        w[n] = 0.0
    for i in range(n):
        cur[0] = np.inf
        row = cross[i].reshape((m, lanes))
        if keep:
            _softmin_row_kept(prev, cur, row, cc[i], yy, m, w[i, 0], w[i, 1], w[i, 2])
        else:
            _softmin_row(prev, cur, row, cc[i], yy, m)
        prev, cur = cur, prev
    return prev


@numba.njit(parallel=True, **_JIT)
def cross_blocks(
    c2: np.ndarray,
    cc: np.ndarray,
    c_len: np.ndarray,
    y: np.ndarray,
    yy: np.ndarray,
    off: np.ndarray,
    off_yy: np.ndarray,
    y_len: np.ndarray,
    out: np.ndarray,
) -> None:
    """Soft-DTW in units of g of every lane of every block to every centroid (forward only).

    c2 (k, N, D), cc (k, N), c_len (k,) rows used of each centroid; y, yy the flat blocks
    at offsets off, off_yy (B + 1,); y_len (B, L) the series lengths. Writes
    out[b * L + l, k] = R_{b,l,k}(c_len[k], y_len[b, l]).
    """
    n_centroids, size = c2.shape[0], c2.shape[1]
    lanes = y_len.shape[1]
    flat_c2 = c2.reshape((n_centroids * size, c2.shape[2]))
    for b in prange(y_len.shape[0]):
        m = (off_yy[b + 1] - off_yy[b]) // lanes
        block, norms = _block(y, yy, off, off_yy, b, m, lanes)
        cross = np.dot(flat_c2, block)  # (k N, m L)
        none = np.empty((0, 3, 0, lanes), yy.dtype)
        for k in range(n_centroids):
            n = c_len[k]
            last = _forward(cross[k * size : k * size + n], cc[k], norms, m, lanes, none)
            for lane in range(lanes):
                out[b * lanes + lane, k] = last[y_len[b, lane], lane]


@numba.njit(**_JIT)
def _bounded(
    prev: np.ndarray,
    cur: np.ndarray,
    cross: np.ndarray,
    cc: np.ndarray,
    yy: np.ndarray,
    m: int,
    best: np.ndarray,
    slack: float,
) -> tuple[np.ndarray, bool]:
    """Rows of R as :func:`_forward` (forward only) until every lane's lower bound on its value
    exceeds ``best`` (L,); returns the last row and whether all n rows were computed.

    softmin_1(a, b, c) >= min(a, b, c) - log 3 and costs are >= 0, so after row i the value is
    at least min_j R(i, j) - log 3 (n - i + m): at most n - i + m steps remain.
    """
    n, lanes = cross.shape[0], prev.shape[1]
    low = np.empty(lanes, yy.dtype)
    prev[0] = 0.0
    prev[1:] = np.inf
    for i in range(n):
        cur[0] = np.inf
        _softmin_row(prev, cur, cross[i].reshape((m, lanes)), cc[i], yy, m)
        prev, cur = cur, prev
        low[:] = np.inf
        for j in range(1, m + 1):
            for lane in range(lanes):
                low[lane] = min(low[lane], prev[j, lane])
        margin = slack * (n - i - 1 + m)
        if i + 1 < n and _all_above(low, margin, best):
            return prev, False
    return prev, True


@numba.njit(**_JIT)
def _all_above(low: np.ndarray, margin: float, best: np.ndarray) -> bool:
    """Whether low - margin exceeds best in every lane, by more than a rounding allowance."""
    for lane in range(low.shape[0]):
        bound = low[lane] - margin
        if not bound > best[lane] + 1e-3 * (abs(best[lane]) + abs(bound) + 1.0):
            return False
    return True


@numba.njit(parallel=True, **_JIT)
def assign_blocks(
    c2: np.ndarray,
    cc: np.ndarray,
    c_len: np.ndarray,
    y: np.ndarray,
    yy: np.ndarray,
    off: np.ndarray,
    off_yy: np.ndarray,
    y_len: np.ndarray,
    first: np.ndarray,
    label: np.ndarray,
    own: np.ndarray,
) -> None:
    """Closest centroid (label) and its soft-DTW in units of g (own) of every lane, by
    dataset lane b * L + l. Block b tries centroid first[b] first, then the others in order,
    each abandoned once no lane can beat its best so far (:func:`_bounded`); ties go to the
    smaller index, as argmin does, so the result equals the argmin of the full matrix."""
    n_centroids, size = c2.shape[0], c2.shape[1]
    lanes = y_len.shape[1]
    flat_c2 = c2.reshape((n_centroids * size, c2.shape[2]))
    slack = np.log(3.0)
    for b in prange(y_len.shape[0]):
        m = (off_yy[b + 1] - off_yy[b]) // lanes
        block, norms = _block(y, yy, off, off_yy, b, m, lanes)
        cross = np.dot(flat_c2, block)  # (k N, m L)
        best, found = np.full(lanes, np.inf, yy.dtype), np.full(lanes, n_centroids, np.int64)
        prev, cur = np.empty((m + 2, lanes), yy.dtype), np.empty((m + 2, lanes), yy.dtype)
        for t in range(n_centroids):
            k = first[b] if t == 0 else (t - 1 if t - 1 < first[b] else t)
            part = cross[k * size : k * size + c_len[k]]
            last, done = _bounded(prev, cur, part, cc[k], norms, m, best, slack)
            for lane in range(lanes):
                value = last[y_len[b, lane], lane]
                if done and (value < best[lane] or (value == best[lane] and k < found[lane])):
                    best[lane], found[lane] = value, k
        label[b * lanes : (b + 1) * lanes] = found
        own[b * lanes : (b + 1) * lanes] = best


@numba.njit(**_JIT)
def _block_gradient(
    c2: np.ndarray,
    cc: np.ndarray,
    block: np.ndarray,
    norms: np.ndarray,
    y_len: np.ndarray,
    m: int,
    seed: np.ndarray,
    mass: np.ndarray,
    pull: np.ndarray,
) -> float:
    """Value sum_l seed_l R_l(n, m_l) of one block against one centroid (n rows); writes the
    mass (n,) and pull (n, D) of the expected alignments seeded by ``seed`` (L,)."""
    n, lanes = c2.shape[0], y_len.shape[0]
    w = np.empty((n + 1, 3, m + 2, lanes), norms.dtype)
    last = _forward(np.dot(c2, block), cc, norms, m, lanes, w)
    value = cc[0] - cc[0]
    seeds = np.zeros((m + 2, lanes), norms.dtype)
    for lane in range(lanes):
        value += seed[lane] * last[y_len[lane], lane]
        seeds[y_len[lane], lane] = seed[lane]
    e_next, e_cur = np.zeros((m + 2, lanes), norms.dtype), np.empty((m + 2, lanes), norms.dtype)
    cells = np.empty((n, m * lanes), norms.dtype)  # E(i, j) of every cell, rows 1..m
    for i in range(n - 1, -1, -1):
        _alignment_row(e_next, e_cur, w[i + 1, 0], w[i + 1, 1], w[i, 2], seeds, m)
        cells[i].reshape((m, lanes))[:] = e_cur[1 : m + 1]
        seeds[:] = 0.0
        e_next, e_cur = e_cur, e_next
    pull[:] = np.dot(cells, block.T)  # (n, D)
    for i in range(n):
        total = value - value
        for q in range(m * lanes):
            total += cells[i, q]
        mass[i] = total
    return value


@numba.njit(parallel=True, **_JIT)
def gradient_blocks(
    c2: np.ndarray,
    cc: np.ndarray,
    y: np.ndarray,
    yy: np.ndarray,
    off: np.ndarray,
    off_yy: np.ndarray,
    y_len: np.ndarray,
    seed: np.ndarray,
    cluster: np.ndarray,
    todo: np.ndarray,
    value: np.ndarray,
    mass: np.ndarray,
    pull: np.ndarray,
) -> None:
    """Per block b in ``todo`` against centroid cluster[b]: value[b] = sum_l seed[b, l]
    R_l(n, m_l) in units of g, and the mass[b] (n,) and pull[b] (n, D) of its seeded expected
    alignments. Lanes with seed 0 (padding) add nothing. Shapes as :func:`cross_blocks`."""
    lanes = y_len.shape[1]
    for t in prange(todo.shape[0]):
        b = todo[t]
        m = (off_yy[b + 1] - off_yy[b]) // lanes
        block, norms = _block(y, yy, off, off_yy, b, m, lanes)
        k = cluster[b]
        value[b] = _block_gradient(
            c2[k], cc[k], block, norms, y_len[b], m, seed[b], mass[b], pull[b]
        )


@numba.njit(**_JIT)
def _sum_by_cluster(
    cluster: np.ndarray,
    todo: np.ndarray,
    value: np.ndarray,
    mass: np.ndarray,
    pull: np.ndarray,
    value_k: np.ndarray,
    mass_k: np.ndarray,
    pull_k: np.ndarray,
) -> None:
    """Add the blocks ``todo`` into their cluster's float64 totals, in block order."""
    for b in todo:
        k = cluster[b]
        value_k[k] += value[b]
        for t in range(mass.shape[1]):
            mass_k[k, t] += mass[b, t]
            for d in range(pull.shape[2]):
                pull_k[k, t, d] += pull[b, t, d]


# ------------------------------------------------------------------------------------------
# Packing and the calls the engine makes
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blocks:
    """Series packed for the kernels: B blocks of L lanes (see the section comment above)."""

    y: np.ndarray  # flat: block b is (D, m_b L) at offsets[b]
    yy: np.ndarray  # flat: block b is (m_b, L), squared frame norms / g, at norm_offsets[b]
    offsets: np.ndarray  # (B + 1,)
    norm_offsets: np.ndarray  # (B + 1,)
    lengths: np.ndarray  # (B, L) series lengths (1 in empty lanes)
    rows: np.ndarray  # (B, L) row of each lane in the dataset, -1 for an empty lane


@contextmanager
def threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` kernel threads (at most numba's maximum) and BLAS
    limited to one thread per call (the kernels call BLAS from each of their threads)."""
    import scipy.linalg.cython_blas  # noqa: F401  # load the BLAS that the kernels call
    from threadpoolctl import threadpool_limits

    previous, chunk = numba.get_num_threads(), numba.get_parallel_chunksize()
    if n_threads is not None:
        numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_parallel_chunksize(CHUNK)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(previous)
        numba.set_parallel_chunksize(chunk)


def lanes_for(dtype: np.dtype) -> int:
    """Series per block for data of ``dtype`` (float32 or float64)."""
    if np.dtype(dtype) not in LANES:
        raise ValueError(f"the compiled kernel runs float32 or float64, got {np.dtype(dtype)}")
    return LANES[np.dtype(dtype)]


def consecutive_rows(n: int, lanes: int) -> np.ndarray:
    """Rows 0..n-1 in blocks of ``lanes``, (B, L), the last block padded with -1."""
    rows = np.full(-(-n // lanes) * lanes, -1, dtype=np.int64)
    rows[:n] = np.arange(n)
    return rows.reshape(-1, lanes)


def rows_by_cluster(labels: np.ndarray, k: int, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of the members of each cluster in row order: rows (B, L) and cluster (B,)."""
    parts = [consecutive_rows(int((labels == c).sum()), lanes) for c in range(k)]
    members = [np.flatnonzero(labels == c) for c in range(k)]
    rows = [np.where(p >= 0, m[np.maximum(p, 0)], -1) for p, m in zip(parts, members, strict=True)]
    cluster = np.repeat(np.arange(k), [len(p) for p in parts])
    return np.concatenate(rows), cluster


def pack(values: np.ndarray, lengths: np.ndarray, rows: np.ndarray, gamma: float) -> Blocks:
    """Pack the series ``rows`` (B, L) of ``values`` (n, T, D), zero beyond ``lengths`` (n,).

    Blocks keep their order; each is cut to its longest series.
    """
    valid = rows >= 0
    safe = np.where(valid, rows, 0)
    block_lengths = np.where(valid, lengths[safe], 1)
    longest = block_lengths.max(axis=1)  # (B,)
    lanes, dim = rows.shape[1], values.shape[2]
    offsets = np.concatenate([[0], np.cumsum(dim * longest * lanes)])
    norm_offsets = np.concatenate([[0], np.cumsum(longest * lanes)])
    y = np.empty(offsets[-1], dtype=values.dtype)
    yy = np.empty(norm_offsets[-1], dtype=values.dtype)
    for m in np.unique(longest):
        group = np.flatnonzero(longest == m)
        block = values[safe[group], :m] * valid[group][:, :, None, None]  # (G, L, m, D)
        packed = block.transpose(0, 3, 2, 1).reshape(len(group), -1)  # (G, D m L)
        norms = ((block**2).sum(-1) / gamma).transpose(0, 2, 1).reshape(len(group), -1)
        for g, b in enumerate(group):
            y[offsets[b] : offsets[b + 1]] = packed[g]
            yy[norm_offsets[b] : norm_offsets[b + 1]] = norms[g]
    return Blocks(y, yy, offsets, norm_offsets, block_lengths, rows)


def _centroid_terms(centers: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """c2 = -2 c / g (k, N, D) and cc = ||c_t||^2 / g (k, N) in the centroids' dtype."""
    c2 = np.ascontiguousarray(centers * (-2.0 / gamma), dtype=centers.dtype)
    cc = np.ascontiguousarray((centers**2).sum(-1) / gamma, dtype=centers.dtype)
    return c2, cc


def cross(blocks: Blocks, centers: np.ndarray, c_len: np.ndarray, gamma: float) -> np.ndarray:
    """Soft-DTW (n, k) of every packed series (by dataset row) to every centroid (k, N, D)
    whose first c_len[k] frames count; in the dtype of the blocks."""
    c2, cc = _centroid_terms(centers.astype(blocks.y.dtype), gamma)
    out = np.empty((blocks.rows.size, len(centers)), dtype=blocks.y.dtype)
    cross_blocks(
        c2,
        cc,
        np.asarray(c_len, dtype=np.int64),
        blocks.y,
        blocks.yy,
        blocks.offsets,
        blocks.norm_offsets,
        blocks.lengths,
        out,
    )
    valid = blocks.rows.ravel() >= 0
    dist = np.empty_like(out[valid])
    dist[blocks.rows.ravel()[valid]] = out[valid] * gamma
    return dist


def assign(
    blocks: Blocks, centers: np.ndarray, gamma: float, first: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Closest centroid (n,) of every packed series (by dataset row) and its soft-DTW (n,):
    the argmin and minimum of :func:`cross` over full-length centroids (k, N, D), computed
    with abandoning. ``first`` (B,) names the centroid each block tries first (default 0)."""
    c2, cc = _centroid_terms(centers.astype(blocks.y.dtype), gamma)
    count = blocks.rows.size
    label, own = np.empty(count, dtype=np.int64), np.empty(count, dtype=blocks.y.dtype)
    first = np.zeros(len(blocks.rows), dtype=np.int64) if first is None else first
    c_len = np.full(len(centers), centers.shape[1], dtype=np.int64)
    args = (blocks.y, blocks.yy, blocks.offsets, blocks.norm_offsets, blocks.lengths)
    assign_blocks(c2, cc, c_len, *args, first.astype(np.int64), label, own)
    valid = blocks.rows.ravel() >= 0
    labels, values = np.empty_like(label[valid]), np.empty_like(own[valid])
    labels[blocks.rows.ravel()[valid]] = label[valid]
    values[blocks.rows.ravel()[valid]] = own[valid] * gamma
    return labels, values


def objective(
    blocks: Blocks, cluster: np.ndarray, centers: np.ndarray, active: np.ndarray, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Barycentre objective of the ``active`` (k,) clusters, each block paired with centroid
    cluster[b]: value (k,) = sum of soft-DTW to the members, gradient (k, N, D) and mass
    (k, N), float64, zeros for inactive clusters; every sum runs in block order."""
    k, size, dim = centers.shape
    c2, cc = _centroid_terms(centers.astype(blocks.y.dtype), gamma)
    todo = np.flatnonzero(active[cluster])
    seed = (blocks.rows >= 0).astype(blocks.y.dtype)
    count = len(cluster)
    value = np.zeros(count, dtype=blocks.y.dtype)
    mass = np.zeros((count, size), dtype=blocks.y.dtype)
    pull = np.zeros((count, size, dim), dtype=blocks.y.dtype)
    args = (blocks.y, blocks.yy, blocks.offsets, blocks.norm_offsets, blocks.lengths, seed)
    gradient_blocks(c2, cc, *args, cluster, todo, value, mass, pull)
    value_k, mass_k, pull_k = np.zeros(k), np.zeros((k, size)), np.zeros((k, size, dim))
    _sum_by_cluster(cluster, todo, value, mass, pull, value_k, mass_k, pull_k)
    value_k *= gamma
    return value_k, 2.0 * (mass_k[..., None] * centers.astype(np.float64) - pull_k), mass_k
