"""Soft-DTW and Soft-DTW k-means: a compiled CPU kernel, fused Triton kernels for CUDA and a
batched torch one (CPU or CUDA).

Modules, each importing only those before it: :mod:`~agcc.sdtw.compiled` (the soft-DTW kernel
compiled for the CPU with numba: values, barycentre gradients and assignment over SIMD blocks of
series), :mod:`~agcc.sdtw.triton_kernels` and :mod:`~agcc.sdtw.fused` (the whole recursion or
its gradient in one Triton launch; triton imported on first use), :mod:`~agcc.sdtw.kernel`
(soft-DTW values and gradients by anti-diagonals in torch, or through the fused kernels),
:mod:`~agcc.sdtw.series` (datasets of variable-length series, resampling, cross soft-DTW,
divergences, assignment), :mod:`~agcc.sdtw.barycentre` (all
barycentres at once by L-BFGS), :mod:`~agcc.sdtw.kmeans` (:class:`SoftDTWKMeans`) and
:mod:`~agcc.sdtw.reference` (tslearn's engine, the only tslearn importer).
"""

from __future__ import annotations

from agcc.sdtw import compiled, fused
from agcc.sdtw.barycentre import update_barycenters
from agcc.sdtw.kernel import divergence, soft_dtw, soft_dtw_cross, soft_dtw_divergence
from agcc.sdtw.kmeans import DEFAULT_BATCH_MB, ClusteringResult, PreparedSeries, SoftDTWKMeans
from agcc.sdtw.reference import fit_tslearn
from agcc.sdtw.series import (
    ASSIGN_CHUNK,
    ArrayLike,
    as_padded_dataset,
    assign,
    centroid_series,
    pairwise_divergence,
    resample,
    sdtw_cross,
)

__all__ = [
    "ASSIGN_CHUNK",
    "DEFAULT_BATCH_MB",
    "ArrayLike",
    "ClusteringResult",
    "PreparedSeries",
    "SoftDTWKMeans",
    "as_padded_dataset",
    "assign",
    "centroid_series",
    "compiled",
    "divergence",
    "fit_tslearn",
    "fused",
    "pairwise_divergence",
    "resample",
    "sdtw_cross",
    "soft_dtw",
    "soft_dtw_cross",
    "soft_dtw_divergence",
    "update_barycenters",
]
