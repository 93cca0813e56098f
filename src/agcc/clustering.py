"""AG clustering by Soft-DTW k-means: fit subset, k sweep with silhouettes, elbow detection.

docs/method.md section 4. The fits use :mod:`agcc.sdtw` (the torch engine, or tslearn's
reference engine); the sweep caches each k's model and logs one nested tracking run per k.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from agcc import tracking
from agcc.errors import ConfigError, DataError
from agcc.io.cluster_model import AGModel, save_model
from agcc.params import ClusterParams
from agcc.sdtw import (
    PreparedSeries,
    SoftDTWKMeans,
    assign,
    centroid_series,
    fit_tslearn,
    pairwise_divergence,
)

log = logging.getLogger(__name__)


def fit_indices(table: pd.DataFrame, cp: ClusterParams, seed: int) -> np.ndarray:
    """Rows of the fit split (all corpora), seeded uniform subsample to ``cp.max_fit_segments``."""
    in_split = table["split"].to_numpy() == cp.fit_split
    for corpus, part in table.groupby("corpus", sort=False):
        if not (part["split"] == cp.fit_split).any():
            raise DataError(
                f"corpus {corpus!r} has no {cp.fit_split!r} segments (splits present: "
                f"{sorted(part['split'].unique())}); the AG model is fit on every corpus"
            )
    idx = np.flatnonzero(in_split)
    if cp.max_fit_segments is not None and len(idx) > cp.max_fit_segments:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(idx, size=cp.max_fit_segments, replace=False))
    return idx


def sweep_ks(cp: ClusterParams, n_fit: int) -> list[int]:
    """The k values to fit: ``cp.k_grid`` plus ``cp.k``; each must be <= the fit segment count."""
    ks = sorted(set(cp.k_grid) | ({cp.k} if cp.k is not None else set()))
    too_big = [k for k in ks if k > n_fit]
    if too_big:
        raise ConfigError(
            f"k values {too_big} exceed the {n_fit} fit segments; shrink cluster.k_grid / "
            "cluster.k or add data"
        )
    return ks


def silhouette(div: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette from a precomputed divergence matrix; NaN with < 2 or n labels in use."""
    from sklearn.metrics import silhouette_score

    n_used = len(np.unique(labels))
    if n_used < 2 or n_used >= len(labels):
        return float("nan")
    return float(silhouette_score(div, labels, metric="precomputed"))


def _numpy(x: Any) -> np.ndarray:
    """A numpy float64 copy of an array or (possibly CUDA) tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _torch_model(k: int, cp: ClusterParams, seed: int, device: str) -> SoftDTWKMeans:
    """The :class:`agcc.sdtw.SoftDTWKMeans` of one k."""
    return SoftDTWKMeans(
        n_clusters=k,
        gamma=cp.gamma,
        max_iter=cp.max_iter,
        tol=cp.tol,
        n_init=cp.n_init,
        random_state=seed,
        device=device,
    )


def prepare_torch(
    series: list[np.ndarray], cp: ClusterParams, seed: int, device: str
) -> PreparedSeries | None:
    """The series prepared once for every k of a sweep (None for the tslearn engine)."""
    return _torch_model(1, cp, seed, device).prepare(series) if cp.engine == "torch" else None


def _fit_torch(
    series: list[np.ndarray] | PreparedSeries, k: int, cp: ClusterParams, seed: int, device: str
) -> tuple[np.ndarray, float, int]:
    """Fit :class:`agcc.sdtw.SoftDTWKMeans`; returns centroids (k, T, D), inertia, iterations."""
    km = _torch_model(k, cp, seed, device).fit(series)
    return _numpy(km.cluster_centers_), float(km.inertia_), int(km.n_iter_)


def _fit_tslearn(
    series: list[np.ndarray], k: int, cp: ClusterParams, seed: int
) -> tuple[np.ndarray, float, int]:
    """Fit the tslearn reference engine with seeds seed .. seed + n_init - 1; best inertia wins."""
    best = None
    for i in range(cp.n_init):
        try:
            fit = fit_tslearn(series, k, cp.gamma, None, cp.max_iter, seed + i, tol=cp.tol)
        except RuntimeError as e:  # every tslearn attempt hit an empty cluster
            raise ConfigError(f"tslearn engine at k={k}: {e}; lower k") from e
        if best is None or fit.inertia < best.inertia:
            best = fit
    return _numpy(best.cluster_centers), float(best.inertia), int(best.n_iter)


def fit_model(
    series: list[np.ndarray],
    k: int,
    cp: ClusterParams,
    seed: int,
    device: str,
    prepared: PreparedSeries | None = None,
) -> AGModel:
    """Soft-DTW k-means with ``cp.engine``; the centroid divergences are added (shape (k, k)).

    ``prepared``: the same series from :func:`prepare_torch`, shared by the fits of a sweep.
    """
    t0 = time.perf_counter()
    if cp.engine == "torch":
        data = series if prepared is None else prepared
        centroids, inertia, n_iter = _fit_torch(data, k, cp, seed, device)
    else:
        centroids, inertia, n_iter = _fit_tslearn(series, k, cp, seed)
    seconds = time.perf_counter() - t0
    cents = centroid_series(centroids)
    if centroids.shape[0] != k or any(len(c) == 0 for c in cents) or not np.isfinite(inertia):
        raise DataError(
            f"{cp.engine} engine returned an unusable model at k={k}: centroids "
            f"{centroids.shape}, inertia {inertia}"
        )
    distance = pairwise_divergence(cents, cp.gamma, device)
    return AGModel(centroids, distance, cp.gamma, cp.engine, inertia, n_iter, seconds)


def sweep(
    series: list[np.ndarray],
    ks: list[int],
    cp: ClusterParams,
    seed: int,
    device: str,
    stage: tracking.StageRun,
    models_dir: Path,
) -> tuple[dict[int, AGModel], pd.DataFrame]:
    """Fit every k (one nested MLflow run each), cache the models; returns them and the curve.

    The silhouette of each fit is computed on one seeded sample of ``cp.silhouette_sample`` fit
    segments from their soft-DTW divergence matrix (computed once, shared by every k).
    """
    rng = np.random.default_rng(seed)
    n_sample = min(cp.silhouette_sample, len(series))
    sample = [series[i] for i in np.sort(rng.choice(len(series), n_sample, replace=False))]
    log.info("soft-DTW divergences of a %d-segment silhouette sample", n_sample)
    div = pairwise_divergence(sample, cp.gamma, device)  # (n_sample, n_sample)
    prepared = prepare_torch(series, cp, seed, device)  # once for every k
    models, rows = {}, []
    for k in tqdm(ks, desc=f"cluster sweep ({cp.engine})"):
        fit_params = {
            "k": k,
            "gamma": cp.gamma,
            "engine": cp.engine,
            "device": device,
            "max_iter": cp.max_iter,
            "tol": cp.tol,
            "n_init": cp.n_init,
            "n_fit": len(series),
            "seed": seed,
        }
        with stage.child(f"k={k}", fit_params) as child:
            model = fit_model(series, k, cp, seed, device, prepared)
            sil = silhouette(div, assign(sample, model.centroids, cp.gamma, device))
            save_model(models_dir / f"k{k:02d}.npz", model)
            child.log_metrics(
                {
                    "inertia": model.inertia,
                    "silhouette": sil,
                    "n_iter": model.n_iter,
                    "seconds": model.seconds,
                }
            )
        log.info(
            "k=%d: inertia %.6g, silhouette %.3f, %d iterations, %.1f s",
            k,
            model.inertia,
            sil,
            model.n_iter,
            model.seconds,
        )
        models[k] = model
        rows.append({"k": k, "inertia": model.inertia, "silhouette": sil})
    return models, pd.DataFrame(rows)


def elbow_k(ks: list[int] | np.ndarray, inertias: list[float] | np.ndarray) -> int:
    r"""The k of the inertia curve's elbow: the point farthest from the chord of the curve.

    Both axes are first scaled to [0, 1] (k' = (k - k_min) / (k_max - k_min), likewise the
    inertia), so the answer does not depend on their units. With the chord from
    P_0 = (k'_0, I'_0) to P_1 = (k'_n, I'_n), the distance of point P is
    |(P_1 - P_0) x (P - P_0)| / |P_1 - P_0|; the largest wins, ties go to the smaller k. A flat
    curve has no elbow and gives the smallest k.

    Args:
        ks: (n,) distinct k values, n >= 3 (any order; sorted here).
        inertias: (n,) finite inertias of those k.

    Returns:
        The elbow k.
    """
    k = np.asarray(ks, dtype=np.float64)
    y = np.asarray(inertias, dtype=np.float64)
    if k.shape != y.shape or len(k) < 3 or len(np.unique(k)) != len(k):
        raise ValueError(f"elbow needs >= 3 distinct k with one inertia each, got {list(ks)}")
    if not np.isfinite(y).all():
        raise ValueError(f"elbow needs finite inertias, got {list(inertias)}")
    order = np.argsort(k)
    k, y = k[order], y[order]
    if np.ptp(y) == 0:
        return int(k[0])
    kn, yn = (k - k[0]) / np.ptp(k), (y - y.min()) / np.ptp(y)
    dx, dy = kn[-1] - kn[0], yn[-1] - yn[0]
    dist = np.abs(dx * (yn - yn[0]) - dy * (kn - kn[0])) / np.hypot(dx, dy)
    return int(k[int(np.argmax(dist))])


def summary_metrics(
    model: AGModel, k_elbow: int, fits: dict[int, AGModel], curve: pd.DataFrame, n: dict[str, int]
) -> dict[str, float]:
    """Headline metrics for DVC: chosen and elbow k, inertia, silhouette and counts (no time)."""
    sil = curve.set_index("k")["silhouette"]
    m = {
        "k_chosen": model.k,
        "k_elbow": k_elbow,
        "inertia": model.inertia,
    } | n
    if np.isfinite(sil[model.k]):
        m["silhouette"] = round(float(sil[model.k]), 6)
    return m
