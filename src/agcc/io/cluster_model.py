"""The AG cluster model of the cluster stage: model.npz / models/kNN.npz and assignments.csv.

model.npz: centroids (k, T, D) float64 (rows past a centroid's length are NaN), distance (k, k)
soft-DTW divergences, k, gamma, engine, inertia, n_iter (no wall-clock time: a DVC output is a
pure function of code, data and params). assignments.csv: one row per
segment (seg_id, corpus, split, emotion, vowel, cluster in 0..k-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agcc.errors import DataError, MissingInputError

ASSIGNMENT_COLUMNS = ["seg_id", "corpus", "split", "emotion", "vowel", "cluster"]


@dataclass(frozen=True)
class AGModel:
    """A fitted AG cluster model: centroids (k, T, D) and their (k, k) soft-DTW divergences."""

    centroids: np.ndarray
    distance: np.ndarray
    gamma: float
    engine: str
    inertia: float
    n_iter: int
    seconds: float = 0.0

    @property
    def k(self) -> int:
        """Number of clusters."""
        return int(self.centroids.shape[0])


def save_model(path: Path, model: AGModel) -> Path:
    """Write a model as npz: centroids (k, T, D), distance (k, k), k, gamma, engine, inertia, ...

    The keys are centroids, distance, k, gamma, engine, inertia and n_iter; the fit time
    (``model.seconds``) goes to MLflow only, so re-running a fit rewrites identical bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        centroids=model.centroids,
        distance=model.distance,
        k=model.k,
        gamma=model.gamma,
        engine=np.array(model.engine),
        inertia=model.inertia,
        n_iter=model.n_iter,
    )
    return path


def load_model(path: str | Path) -> AGModel:
    """Read a model written by :func:`save_model` (``model.npz`` or ``models/k??.npz``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such AG model; run the cluster stage first")
    with np.load(path) as z:
        return AGModel(
            centroids=z["centroids"],
            distance=z["distance"],
            gamma=float(z["gamma"]),
            engine=str(z["engine"]),
            inertia=float(z["inertia"]),
            n_iter=int(z["n_iter"]),
        )


def write_assignments(table: pd.DataFrame, labels: np.ndarray, path: Path) -> pd.DataFrame:
    """Write ``assignments.csv``: one row per segment with its cluster id (0..k-1)."""
    out = table[ASSIGNMENT_COLUMNS[:-1]].assign(cluster=labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return out


def read_assignments(cluster_dir: Path, table: pd.DataFrame, k: int) -> pd.DataFrame:
    """``table`` with the ``cluster`` column of ``assignments.csv``; every segment must have one."""
    path = cluster_dir / "assignments.csv"
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file; run the cluster stage first")
    assigned = pd.read_csv(path, keep_default_na=False)[["seg_id", "corpus", "cluster"]]
    frame = table.merge(assigned, on=["corpus", "seg_id"], how="left", validate="one_to_one")
    missing = frame.loc[frame["cluster"].isna(), "seg_id"]
    if len(missing):
        raise DataError(
            f"{path}: no cluster for {len(missing)} segments (e.g. {missing.iloc[0]!r}); "
            "the segments changed since clustering - re-run the cluster stage"
        )
    frame["cluster"] = frame["cluster"].astype(int)
    bad = frame.loc[(frame["cluster"] < 0) | (frame["cluster"] >= k), "cluster"]
    if len(bad):
        raise DataError(f"{path}: cluster ids must lie in 0..{k - 1}, got {bad.iloc[0]}")
    return frame
