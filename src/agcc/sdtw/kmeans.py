"""Soft-DTW k-means (:class:`SoftDTWKMeans`): the compiled kernel on CPU, torch on CUDA.

The engine has the objective of ``tslearn.clustering.TimeSeriesKMeans(metric="softdtw")``:
assignment to the centroid of smallest soft-DTW, barycentres minimising the sum of soft-DTW to the
members, inertia = mean over series of sdtw(x_i, c_{l_i})^2. It updates all centroids at once
(:mod:`agcc.sdtw.barycentre`). On the CPU the soft-DTW values and gradients come from the
compiled kernel of :mod:`agcc.sdtw.compiled`, on CUDA from the fused Triton kernels of
:mod:`agcc.sdtw.fused` (or, without Triton, the torch wavefront of :mod:`agcc.sdtw.kernel`;
``kernel`` chooses). :func:`agcc.sdtw.reference.fit_tslearn` runs
the reference.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

import agcc.sdtw.compiled as compiled
import agcc.sdtw.fused as fused
from agcc.sdtw.barycentre import _Series, update_barycenters, update_barycenters_compiled
from agcc.sdtw.kernel import _check_gamma, _pairs_per_batch, _Workspace, soft_dtw_cross
from agcc.sdtw.series import ArrayLike, _strip_padding, as_padded_dataset, resample

logger = logging.getLogger(__name__)

_FLOATS = (torch.float32, torch.float64)

#: Memory per batch of series-centroid pairs of the torch kernel, in MB, by device type
#: (softmin weights for the gradient; a batch without gradient needs about a quarter).
DEFAULT_BATCH_MB = {"cpu": 64.0, "cuda": 4096.0}

#: The soft-DTW kernels: "compiled" (numba, CPU only), "torch" (the batched wavefront, CPU or
#: CUDA), "fused" (Triton, one launch per pass; CUDA float32) and "auto" (compiled on CPU,
#: fused on CUDA when Triton is importable, else torch).
KERNELS = ("auto", "compiled", "torch", "fused")

#: The torch-path kernel choice of :func:`agcc.sdtw.fused.wanted` for each ``kernel``.
_TORCH_PATH = {"auto": "auto", "compiled": "wavefront", "torch": "wavefront", "fused": "fused"}


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


@contextmanager
def _threads(n_threads: int | None, use_compiled: bool) -> Iterator[None]:
    """:func:`_torch_threads`, and with the compiled kernel also its thread count."""
    with _torch_threads(n_threads):
        if not use_compiled:
            yield
            return
        with compiled.threads(n_threads):
            yield


@dataclass(frozen=True)
class _Grouped:
    """The training series packed by cluster for the compiled kernel: blocks and cluster (B,)."""

    blocks: compiled.Blocks
    cluster: np.ndarray


@dataclass
class PreparedSeries:
    """A dataset made ready once for several fits of the same settings (the elbow sweep).

    Holds the series shifted, sorted and on the device (packed for the compiled kernel), and
    the k-means++ potentials computed so far by series row: fits with the same
    ``random_state`` draw the same first seeds and many of the same candidates, whose soft-DTW
    to every series is then computed once for the whole sweep.
    """

    data: _Series  # its ``potentials`` fill up as fits use them
    shift: np.ndarray  # (D,) the mean training frame subtracted from every series
    settings: tuple  # what the preparation depends on: device, dtype, gamma, kernel path


@dataclass(frozen=True)
class ClusteringResult:
    """One fitted clustering: centroids (k, T_c, D), labels (n,), inertia and iterations run."""

    cluster_centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int


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
        kernel: "auto" (default: the compiled kernel on CPU; on CUDA the fused kernel when
            Triton is importable and the dtype is float32, else torch), "compiled"
            (:mod:`agcc.sdtw.compiled`, numba, CPU only), "torch" (the batched wavefront of
            :mod:`agcc.sdtw.kernel`) or "fused" (:mod:`agcc.sdtw.fused`, Triton). All compute the
            same objective; they differ in rounding.
        batch_mb: memory per batch of series-centroid pairs of the torch kernel, in MB
            (default by device type: ``DEFAULT_BATCH_MB``).
        n_threads: threads while fitting or predicting (torch intra-op threads and the compiled
            kernel's threads, set process-wide for the call, then restored); None leaves them
            alone. Results do not depend on it. The torch wavefront issues ~100,000 small ops per
            fit, each an OpenMP barrier: on a 2-core machine 2 threads gain ~1.5x when it is idle
            and lose up to 20x when another job holds a core, hence 1.
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
        kernel: str = "auto",
        batch_mb: float | None = None,
        n_threads: int | None = 1,
        verbose: bool = False,
    ) -> None:
        """Store the parameters (checked and resolved by :meth:`fit`)."""
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.max_iter_barycenter = max_iter_barycenter
        self.tol_barycenter = tol_barycenter
        self.init = init
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.kernel = kernel
        self.batch_mb = batch_mb
        self.n_threads = n_threads
        self.verbose = verbose

    @property
    def _device(self) -> torch.device:
        """The configured device as a torch device."""
        return torch.device(self.device)

    @property
    def _use_compiled(self) -> bool:
        """Whether the compiled CPU kernel runs (``kernel``, resolved by device)."""
        on_cpu = self._device.type == "cpu" and self.dtype in _FLOATS
        return self.kernel == "compiled" or (self.kernel == "auto" and on_cpu)

    @property
    def _batch_mb(self) -> float:
        """The configured batch memory in MB, by default ``DEFAULT_BATCH_MB`` of the device."""
        return self.batch_mb or DEFAULT_BATCH_MB.get(self._device.type, 64.0)

    # -- public API ---------------------------------------------------------------------------

    def prepare(self, X: ArrayLike) -> PreparedSeries:
        """X made ready for :meth:`fit` by any model of the same device, dtype, gamma and
        kernel (whatever its k): the elbow sweep prepares once and shares the k-means++ work."""
        data, shift = self._prepare(X)
        return PreparedSeries(data, shift, self._settings)

    @property
    def _settings(self) -> tuple:
        """The settings a :class:`PreparedSeries` must have been made with."""
        return (self._device, self.dtype, self.gamma, self._use_compiled)

    def _prepared(self, X: ArrayLike | PreparedSeries) -> PreparedSeries:
        """X prepared (checked against this model's settings), or prepared now."""
        if not isinstance(X, PreparedSeries):
            return self.prepare(X)
        if X.settings != self._settings:
            raise ValueError(
                f"series prepared for {X.settings} cannot be fitted with {self._settings} "
                "(device, dtype, gamma, compiled kernel)"
            )
        self._check_params(len(X.data.lengths), X.data.values.shape[2])
        return X

    def fit(self, X: ArrayLike | PreparedSeries) -> SoftDTWKMeans:
        """Cluster X: a sequence of (T_i, D) arrays, a NaN-padded (n, T, D) array, or series
        from :meth:`prepare`."""
        prepared = self._prepared(X)
        data, shift = prepared.data, prepared.shift
        rng = np.random.default_rng(self.random_state)
        n_init = 1 if isinstance(self.init, np.ndarray) else self.n_init
        results = []
        with _threads(self.n_threads, self._use_compiled):
            for run in range(n_init):
                result = self._fit_one(data, self._initial_centers(data, rng, shift))
                logger.info(
                    "init %d/%d: inertia %.6g after %d iterations",
                    run + 1,
                    n_init,
                    result.inertia,
                    result.n_iter,
                )
                results.append(result)
        best = min(results, key=lambda r: r.inertia)
        self.shift_ = shift
        self.cluster_centers_ = best.cluster_centers + shift
        self.labels_ = best.labels
        self.inertia_ = best.inertia
        self.n_iter_ = best.n_iter
        return self

    def init_centers(self, X: ArrayLike | PreparedSeries) -> np.ndarray:
        """The centroids (k, T_c, D) from which the first initialisation of ``fit(X)`` starts."""
        prepared = self._prepared(X)
        data, shift = prepared.data, prepared.shift
        with _threads(self.n_threads, self._use_compiled):
            centers = self._initial_centers(data, np.random.default_rng(self.random_state), shift)
        return centers.double().cpu().numpy() + shift

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
        with _threads(self.n_threads, self._use_compiled):
            data = self._to_device(values, lengths, self.shift_)
            centers = self._tensor(self.cluster_centers_ - self.shift_)
            dist = self._cross(data, centers, None)
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
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self._use_compiled and (self._device.type != "cpu" or self.dtype not in _FLOATS):
            raise ValueError(
                f"the compiled kernel runs float32/float64 on the CPU, got {self.dtype} on "
                f"{self._device}"
            )
        if self.kernel == "fused":  # Triton, float32 and a device it runs on, or a ValueError
            fused.wanted("fused", torch.empty(0, dtype=self.dtype, device=self._device))
        for name in ("max_iter", "n_init", "max_iter_barycenter", "batch_mb", "n_threads"):
            value = self._batch_mb if name == "batch_mb" else getattr(self, name)
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

    def _prepare(self, X: ArrayLike) -> tuple[_Series, np.ndarray]:
        """Validate X and the parameters; X on the device and the shift (its mean frame, (D,))."""
        values, lengths = as_padded_dataset(X)
        self._check_params(len(values), values.shape[2])
        shift = values.sum(axis=(0, 1)) / lengths.sum()  # (D,) mean frame
        with _threads(self.n_threads, self._use_compiled):
            return self._to_device(values, lengths, shift), shift

    def _tensor(self, values: np.ndarray) -> Tensor:
        """A numpy array as a tensor of the configured device and dtype."""
        return torch.as_tensor(values, dtype=self.dtype, device=self._device)

    def _to_device(self, values: np.ndarray, lengths: np.ndarray, shift: np.ndarray) -> _Series:
        """Shift by the training mean frame, sort by length and move to the device."""
        order = np.argsort(lengths, kind="stable")
        shifted = values[order] - shift  # (n, T_max, D)
        shifted[np.arange(shifted.shape[1])[None, :] >= lengths[order][:, None]] = 0.0
        lengths_t = torch.as_tensor(lengths[order], device=self._device)
        series = self._tensor(shifted)
        if not self._use_compiled:
            return _Series(series, lengths_t, order)
        as_array = series.numpy()
        rows = compiled.consecutive_rows(len(order), compiled.lanes_for(as_array.dtype))
        blocks = compiled.pack(as_array, lengths[order], rows, self.gamma)
        return _Series(series, lengths_t, order, blocks)

    def _initial_centers(
        self, data: _Series, rng: np.random.Generator, shift: np.ndarray
    ) -> Tensor:
        """Initial centroids (k, T_c, D) in coordinates shifted by ``shift``."""
        if isinstance(self.init, np.ndarray):
            size = self.init.shape[1]
            rows = [_strip_padding(c, i) - shift for i, c in enumerate(self.init)]
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
        """max(sdtw, 0)^2 (n, len(rows)) of every series to the series ``rows``, each row's
        column computed once per prepared dataset."""
        cache = data.potentials
        missing = [row for row in dict.fromkeys(rows) if row not in cache]
        if missing:
            idx = torch.as_tensor(missing, device=self._device)
            seeds = data.values[idx, : int(data.lengths[idx].max())]
            dist = self._cross(data, seeds, data.lengths[idx])
            cache.update(zip(missing, (dist.clamp_min(0) ** 2).unbind(1), strict=True))
        return torch.stack([cache[row] for row in rows], 1)

    def _cross(self, data: _Series, y: Tensor, y_len: Tensor | None) -> Tensor:
        """Soft-DTW (n, C) of the series of ``data`` to series y (C, M, D) of lengths y_len."""
        if data.blocks is not None:
            lengths = np.full(len(y), y.shape[1]) if y_len is None else y_len.numpy()
            dist = compiled.cross(data.blocks, y.numpy(), lengths, self.gamma)
            return torch.from_numpy(dist)
        x, x_len = data.values, data.lengths
        pairs = _pairs_per_batch(self._batch_mb, x.element_size(), y.shape[1], x.shape[1])
        kernel = _TORCH_PATH[self.kernel]
        return soft_dtw_cross(x, y, self.gamma, x_len, y_len, pairs, kernel)

    def _fit_one(self, data: _Series, centers: Tensor) -> ClusteringResult:
        """Lloyd iterations from ``centers`` until the inertia settles or max_iter is reached."""
        previous, n_iter, workspace, grouped = math.inf, 0, _Workspace(), None
        steps = tqdm(total=self.max_iter, desc="soft-DTW k-means", disable=not self.verbose)
        for n_iter in range(1, self.max_iter + 1):
            labels, inertia, centers = self._assign(data, centers, grouped)
            grouped = self._group(data, labels)
            centers = self._update(data, labels, centers, workspace, grouped)
            steps.update()
            steps.set_postfix(inertia=f"{inertia:.6g}")
            logger.debug("iteration %d: inertia %.6g", n_iter, inertia)
            if abs(previous - inertia) < self.tol:
                break
            previous = inertia
        steps.close()
        labels, inertia, centers = self._assign(data, centers, grouped)
        labels_np = np.empty(len(labels), dtype=np.int64)
        labels_np[data.order] = labels.cpu().numpy()
        return ClusteringResult(centers.double().cpu().numpy(), labels_np, inertia, n_iter)

    def _group(self, data: _Series, labels: Tensor) -> _Grouped | None:
        """The series packed by cluster for the compiled kernel (None on the torch path)."""
        if data.blocks is None:
            return None
        values = data.values.numpy()
        lanes = compiled.lanes_for(values.dtype)
        rows, cluster = compiled.rows_by_cluster(labels.numpy(), self.n_clusters, lanes)
        blocks = compiled.pack(values, data.lengths.numpy(), rows, self.gamma)
        return _Grouped(blocks, cluster)

    def _assign(
        self, data: _Series, centers: Tensor, grouped: _Grouped | None = None
    ) -> tuple[Tensor, float, Tensor]:
        """Labels (n,), inertia mean_i sdtw(x_i, c_{l_i})^2 and centroids (re-seeded if empty).

        The compiled kernel computes only each series' closest centroid, trying first the one
        of its block in ``grouped`` (the clusters of the previous iteration); the full matrix is
        computed when a cluster is empty.
        """
        if data.blocks is not None:
            blocks, first = data.blocks, None
            if grouped is not None:
                blocks, first = grouped.blocks, grouped.cluster
            found, own_np = compiled.assign(blocks, centers.numpy(), self.gamma, first)
            labels, own = torch.from_numpy(found), torch.from_numpy(own_np)
            if torch.bincount(labels, minlength=self.n_clusters).min() > 0:
                return labels, float((own.double() ** 2).mean()), centers
        dist = self._cross(data, centers, None)
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
        dist = self._cross(data, centers, None)
        return labels, dist, centers

    def _update(
        self,
        data: _Series,
        labels: Tensor,
        centers: Tensor,
        workspace: _Workspace,
        grouped: _Grouped | None,
    ) -> Tensor:
        """Barycentres: all centroids at once by L-BFGS on the sum of soft-DTW to the members."""
        if grouped is not None:
            return update_barycenters_compiled(
                centers,
                grouped.blocks,
                grouped.cluster,
                self.gamma,
                self.max_iter_barycenter,
                self.tol_barycenter,
            )
        return update_barycenters(
            centers,
            data,
            labels,
            self.gamma,
            self._batch_mb,
            self.max_iter_barycenter,
            self.tol_barycenter,
            workspace,
            _TORCH_PATH[self.kernel],
        )
