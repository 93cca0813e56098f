"""Stage ``cluster``: AG clusters by Soft-DTW k-means over the vowel segments (METHOD.md sec. 4).

One model for all six vowels is fitted on the ``cluster.fit_split`` (validation) segments of every
corpus together, all emotions included, as in the paper (Sec. II-C). Every k of ``cluster.k_grid``
(plus ``cluster.k``) is fitted and cached in ``models/k{k:02d}.npz`` so tuning can pick k later
without re-clustering; the elbow of the inertia curve is reported and the chosen model
(``cluster.k`` if set, else the elbow) assigns a cluster id to every segment of every split of
every corpus.

Outputs in ``out_dir``: ``models/k??.npz`` and ``model.npz`` (see :func:`save_model`),
``assignments.csv`` (seg_id, corpus, split, emotion, vowel, cluster; ids 0..k-1), ``elbow.csv``
(k, inertia, silhouette; a DVC plot), ``elbow.png`` and ``metrics.json``.

Assignments, silhouettes and the centroid distance matrix are computed with the batched soft-DTW
of :mod:`agcc.sdtw` whatever the fitting engine: a segment goes to the centroid of smallest
soft-DTW, the rule both engines use. Bad input is an error naming the folder and the segment:
NaN or infinite values, fewer than two frames, mixed frame widths, an empty corpus, a corpus
without fit-split segments, or a k larger than the number of fit segments.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from agcc import tracking
from agcc.params import BaseParams, ClusterParams
from agcc.stages.segments import load_segments

log = logging.getLogger(__name__)

ASSIGNMENT_COLUMNS = ["seg_id", "corpus", "split", "emotion", "vowel", "cluster"]
#: Segments per soft-DTW call when assigning; bounds memory, gives the progress bar its steps.
ASSIGN_CHUNK = 4096


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


# ---------------------------------------------------------------------------------------------
# Input


def load_corpora(seg_dirs: list[Path]) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Load and check the segments of every folder; one table and one (T_i, D) list for all."""
    if not seg_dirs:
        raise ValueError("no segments folder given (--segments DIR [DIR ...])")
    tables, series = [], []
    for seg_dir in seg_dirs:
        table, frames = load_segments(seg_dir)
        check_segments(table, frames, Path(seg_dir))
        tables.append(table)
        series.extend(frames)
    table = pd.concat(tables, ignore_index=True)
    names = [t["corpus"].iloc[0] for t in tables]
    if len(set(names)) != len(names) or any(t["corpus"].nunique() != 1 for t in tables):
        raise ValueError(f"each segments folder must hold one distinct corpus, got {names}")
    widths = {f.shape[1] for f in series}
    if len(widths) != 1:
        raise ValueError(f"segments of {seg_dirs} mix frame widths {sorted(widths)}")
    return table, series


def check_segments(table: pd.DataFrame, frames: list[np.ndarray], seg_dir: Path) -> None:
    """Fail naming the folder and segment on an empty corpus, NaN/inf values or < 2 frames."""
    if not len(table):
        raise ValueError(f"{seg_dir}: no segments in segments.csv (empty corpus)")
    for seg_id, f in zip(table["seg_id"], frames, strict=True):
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(
                f"{seg_dir}: segment {seg_id!r} has {len(f)} frame(s), shape {f.shape}; Soft-DTW "
                "clustering needs >= 2 frames per segment (segments.min_frames)"
            )
        if not np.isfinite(f).all():
            raise ValueError(f"{seg_dir}: segment {seg_id!r} contains NaN or infinite values")


def fit_indices(table: pd.DataFrame, cp: ClusterParams, seed: int) -> np.ndarray:
    """Rows of the fit split (all corpora), seeded uniform subsample to ``cp.max_fit_segments``."""
    in_split = table["split"].to_numpy() == cp.fit_split
    for corpus, part in table.groupby("corpus", sort=False):
        if not (part["split"] == cp.fit_split).any():
            raise ValueError(
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
        raise ValueError(
            f"k values {too_big} exceed the {n_fit} fit segments; shrink cluster.k_grid / "
            "cluster.k or add data"
        )
    return ks


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without CUDA is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("cluster.device='cuda' but torch finds no CUDA device; use 'auto'")
    return device


# ---------------------------------------------------------------------------------------------
# Soft-DTW helpers (assignment, divergences)


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
    from agcc.sdtw import soft_dtw_cross

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


def silhouette(div: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette from a precomputed divergence matrix; NaN with < 2 or n labels in use."""
    from sklearn.metrics import silhouette_score

    n_used = len(np.unique(labels))
    if n_used < 2 or n_used >= len(labels):
        return float("nan")
    return float(silhouette_score(div, labels, metric="precomputed"))


# ---------------------------------------------------------------------------------------------
# Fitting


def _numpy(x: Any) -> np.ndarray:
    """A numpy float64 copy of an array or (possibly CUDA) tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _fit_torch(
    series: list[np.ndarray], k: int, cp: ClusterParams, seed: int, device: str
) -> tuple[np.ndarray, float, int]:
    """Fit :class:`agcc.sdtw.SoftDTWKMeans`; returns centroids (k, T, D), inertia, iterations."""
    from agcc.sdtw import SoftDTWKMeans

    km = SoftDTWKMeans(
        n_clusters=k,
        gamma=cp.gamma,
        max_iter=cp.max_iter,
        tol=cp.tol,
        n_init=cp.n_init,
        random_state=seed,
        device=device,
    )
    km.fit(series)
    return _numpy(km.cluster_centers_), float(km.inertia_), int(km.n_iter_)


def _fit_tslearn(
    series: list[np.ndarray], k: int, cp: ClusterParams, seed: int
) -> tuple[np.ndarray, float, int]:
    """Fit the tslearn reference engine with seeds seed .. seed + n_init - 1; best inertia wins."""
    from agcc.sdtw import fit_tslearn

    best = None
    for i in range(cp.n_init):
        try:
            fit = fit_tslearn(series, k, cp.gamma, None, cp.max_iter, seed + i, tol=cp.tol)
        except RuntimeError as e:  # every tslearn attempt hit an empty cluster
            raise ValueError(f"tslearn engine at k={k}: {e}; lower k") from e
        if best is None or fit.inertia < best.inertia:
            best = fit
    return _numpy(best.cluster_centers), float(best.inertia), int(best.n_iter)


def fit_model(
    series: list[np.ndarray], k: int, cp: ClusterParams, seed: int, device: str
) -> AGModel:
    """Soft-DTW k-means with ``cp.engine``; the centroid divergences are added (shape (k, k))."""
    t0 = time.perf_counter()
    if cp.engine == "torch":
        centroids, inertia, n_iter = _fit_torch(series, k, cp, seed, device)
    else:
        centroids, inertia, n_iter = _fit_tslearn(series, k, cp, seed)
    seconds = time.perf_counter() - t0
    cents = centroid_series(centroids)
    if centroids.shape[0] != k or any(len(c) == 0 for c in cents) or not np.isfinite(inertia):
        raise ValueError(
            f"{cp.engine} engine returned an unusable model at k={k}: centroids "
            f"{centroids.shape}, inertia {inertia}"
        )
    distance = pairwise_divergence(cents, cp.gamma, device)
    return AGModel(centroids, distance, cp.gamma, cp.engine, inertia, n_iter, seconds)


def save_model(path: Path, model: AGModel) -> Path:
    """Write a model as npz: centroids (k, T, D), distance (k, k), k, gamma, engine, inertia, ...

    The keys are centroids, distance, k, gamma, engine, inertia, n_iter and seconds.
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
        seconds=model.seconds,
    )
    return path


def load_model(path: str | Path) -> AGModel:
    """Read a model written by :func:`save_model` (``model.npz`` or ``models/k??.npz``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such AG model; run the cluster stage first")
    with np.load(path) as z:
        return AGModel(
            centroids=z["centroids"],
            distance=z["distance"],
            gamma=float(z["gamma"]),
            engine=str(z["engine"]),
            inertia=float(z["inertia"]),
            n_iter=int(z["n_iter"]),
            seconds=float(z["seconds"]),
        )


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
            model = fit_model(series, k, cp, seed, device)
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


# ---------------------------------------------------------------------------------------------
# Elbow


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


def plot_elbow(curve: pd.DataFrame, k_elbow: int, k_chosen: int) -> Any:
    """Inertia (left axis) and silhouette (right axis) against k, elbow and chosen k marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(curve["k"], curve["inertia"], "o-", color="C0", label="inertia")
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("inertia (mean squared soft-DTW)", color="C0")
    ax2 = ax.twinx()
    ax2.plot(curve["k"], curve["silhouette"], "s--", color="C2", label="silhouette")
    ax2.set_ylabel("silhouette (soft-DTW divergence)", color="C2")
    ax.axvline(k_elbow, color="C3", ls=":", label=f"elbow k={k_elbow}")
    ax.axvline(k_chosen, color="k", ls="-", lw=0.8, label=f"chosen k={k_chosen}")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper right")
    ax.set_title("AG clustering: elbow sweep")
    return fig


# ---------------------------------------------------------------------------------------------
# Stage


def write_assignments(table: pd.DataFrame, labels: np.ndarray, path: Path) -> pd.DataFrame:
    """Write ``assignments.csv``: one row per segment with its cluster id (0..k-1)."""
    out = table[ASSIGNMENT_COLUMNS[:-1]].assign(cluster=labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return out


def _stage_metrics(
    model: AGModel, k_elbow: int, fits: dict[int, AGModel], curve: pd.DataFrame, n: dict[str, int]
) -> dict[str, float]:
    """Headline metrics: chosen and elbow k, inertia, silhouette, fit time and counts."""
    sil = curve.set_index("k")["silhouette"]
    m = {
        "k_chosen": model.k,
        "k_elbow": k_elbow,
        "inertia": model.inertia,
        "fit_seconds": round(sum(f.seconds for f in fits.values()), 3),
    } | n
    if np.isfinite(sil[model.k]):
        m["silhouette"] = round(float(sil[model.k]), 6)
    return m


def run(seg_dirs: list[Path], cp: ClusterParams, base: BaseParams, out_dir: Path) -> AGModel:
    """Fit the k sweep on the fit split of all corpora, pick k, assign every segment, write all."""
    out_dir = Path(out_dir)
    params = {"cluster": cp.model_dump(), "seed": base.seed, "segments": [str(d) for d in seg_dirs]}
    with tracking.stage_run("cluster", params=params, metrics_path=out_dir / "metrics.json") as st:
        log.info("loading segments from %s", ", ".join(map(str, seg_dirs)))
        table, series = load_corpora([Path(d) for d in seg_dirs])
        st.skips.n_seen = len(table)
        idx = fit_indices(table, cp, base.seed)
        ks = sweep_ks(cp, len(idx))
        device = resolve_device(cp.device)
        log.info(
            "fitting k = %s on %d %r segments (%s engine, %s)",
            ks,
            len(idx),
            cp.fit_split,
            cp.engine,
            device,
        )
        models, curve = sweep(
            [series[i] for i in idx], ks, cp, base.seed, device, st, out_dir / "models"
        )
        on_grid = curve[curve["k"].isin(cp.k_grid)]
        k_elbow = elbow_k(on_grid["k"].to_numpy(), on_grid["inertia"].to_numpy())
        model = models[cp.k if cp.k is not None else k_elbow]
        log.info("elbow at k=%d; using k=%d", k_elbow, model.k)
        labels = assign(series, model.centroids, cp.gamma, device)
        log.info(
            "writing assignments of %d segments, model and elbow curve to %s", len(labels), out_dir
        )
        write_assignments(table, labels, out_dir / "assignments.csv")
        save_model(out_dir / "model.npz", model)
        curve.to_csv(out_dir / "elbow.csv", index=False)
        fig = plot_elbow(curve, k_elbow, model.k)
        fig.savefig(out_dir / "elbow.png", dpi=120)
        for name in ("assignments.csv", "model.npz", "elbow.csv", "elbow.png"):
            st.log_artifact(out_dir / name)
        counts = {
            "n_segments": len(table),
            "n_fit": len(idx),
            "n_empty_clusters": int((np.bincount(labels, minlength=model.k) == 0).sum()),
        }
        st.metrics |= _stage_metrics(model, k_elbow, models, curve, counts)
    return model
