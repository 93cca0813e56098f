"""The reference engine: tslearn's ``TimeSeriesKMeans(metric="softdtw")``.

The only module of the project that imports tslearn (lazily: it is an optional dependency).
"""

from __future__ import annotations

import numpy as np

from agcc.sdtw.kmeans import ClusteringResult
from agcc.sdtw.series import ArrayLike, as_padded_dataset


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
