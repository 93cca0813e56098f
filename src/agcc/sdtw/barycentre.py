"""Soft-DTW barycentres: every centroid of a clustering updated at once by a batched L-BFGS.

Each centroid c (T_c, D) minimises the sum of sdtw_gamma(c, x_i) over its members x_i; the
gradient comes from the expected alignments of :mod:`agcc.sdtw.kernel` (Algorithm 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

import agcc.sdtw.compiled as compiled
import agcc.sdtw.fused as fused
from agcc.sdtw.kernel import (
    _pair_cost,
    _pairs_per_batch,
    _sdtw_wavefront,
    _sdtw_wavefront_grad,
    _take,
    _Workspace,
)

#: Step reductions (at most) of the line search of one barycentre L-BFGS iteration.
_MAX_BACKTRACKS = 10


@dataclass(frozen=True)
class _Series:
    """A dataset on the compute device, sorted by length (shortest first), padding zeroed.

    ``blocks`` holds it packed for the compiled CPU kernel (consecutive rows per block), or
    None on the torch path.
    """

    values: Tensor  # (n, T_max, D)
    lengths: Tensor  # (n,)
    order: np.ndarray  # (n,) original index of each sorted row
    blocks: compiled.Blocks | None = None
    #: k-means++ potentials max(sdtw, 0)^2 (n,) of every series to series ``row``, by row:
    #: filled by the fits that share this dataset
    potentials: dict[int, Tensor] = field(default_factory=dict)


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
    use_fused: bool = False,
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
        grid = (size, y.shape[1])
        if use_fused:
            sdtw, r = fused.forward(cost, x_len, y_len, True)
            align = fused.backward(cost, r, torch.ones_like(sdtw), x_len, y_len)
        else:
            sdtw, weights = _sdtw_wavefront(cost, x_len, y_len, True, workspace)
            ones = torch.ones_like(sdtw)
            align = _sdtw_wavefront_grad(weights, ones, x_len, y_len, grid, workspace)
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


def update_barycenters(
    centers: Tensor,
    data: _Series,
    labels: Tensor,
    gamma: float,
    batch_mb: float,
    max_iter: int,
    ftol: float,
    workspace: _Workspace | None = None,
    kernel: str = "auto",
) -> Tensor:
    """Soft-DTW barycentres (k, T_c, D) of clusters ``labels`` (n,) of ``data`` from ``centers``.

    All centroids at once by L-BFGS on the sum of soft-DTW to their members
    (:func:`_lbfgs_barycenters`), in batches of series-centroid pairs sized for ``batch_mb`` MB;
    ``kernel`` as in :func:`agcc.sdtw.fused.wanted`.
    """
    use_fused = fused.wanted(kernel, centers)

    def evaluate(trial: Tensor, clusters: Tensor) -> _Objective:
        """Objective of the clusters in the mask ``clusters`` at centroids ``trial``."""
        pairs = _pairs_per_batch(
            batch_mb, trial.element_size(), trial.shape[1], data.values.shape[1]
        )
        return _barycenter_objective(
            trial, data, labels, clusters, gamma, pairs, workspace, use_fused
        )

    return _lbfgs_barycenters(centers, evaluate, max_iter, ftol)


def update_barycenters_compiled(
    centers: Tensor,
    blocks: compiled.Blocks,
    cluster: np.ndarray,
    gamma: float,
    max_iter: int,
    ftol: float,
) -> Tensor:
    """:func:`update_barycenters` with the objective evaluated by the compiled CPU kernel.

    ``blocks`` holds the members of each cluster, packed by
    :func:`agcc.sdtw.compiled.rows_by_cluster` (block b belongs to cluster[b]); the L-BFGS
    iterations are the same.
    """

    def evaluate(trial: Tensor, clusters: Tensor) -> _Objective:
        """Objective of the clusters in the mask ``clusters`` at centroids ``trial``."""
        found = compiled.objective(blocks, cluster, trial.numpy(), clusters.numpy(), gamma)
        return _Objective(*(torch.as_tensor(a, dtype=centers.dtype) for a in found))

    return _lbfgs_barycenters(centers, evaluate, max_iter, ftol)
