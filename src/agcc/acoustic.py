"""Fig. 2: acoustic Soft-DTW k-means clusters of the vowel segments against the AG clusters.

docs/method.md section 5 (paper Sec. II-C.2). The acoustic frames of a segment are those of its
interval on the features' frame grid (:func:`agcc.framing.segment_frames`); the clusters are fitted
by :class:`agcc.sdtw.SoftDTWKMeans` on z-normalised frames, and the association with the AG
clusters is measured per emotion by :func:`agcc.stats.association`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agcc.errors import DataError
from agcc.framing import segment_frames
from agcc.io.features import load_features
from agcc.overlap import EMOTION_ORDER
from agcc.params import AnalyzeParams
from agcc.sdtw import SoftDTWKMeans
from agcc.stats import association, association_counts, row_shares

log = logging.getLogger(__name__)

FIG2_FIT_SPLIT = "val"


FIG2_MAX_ITER = 30


def acoustic_segments(
    frame: pd.DataFrame, features_root: Path
) -> tuple[list[np.ndarray | None], dict[str, Any]]:
    """Acoustic frames (T_i, D) float32 of each row's [seg_start, seg_end), or None if missing.

    A segment has no frames when its utterance was skipped by the features stage (bad audio)
    or its interval lies beyond the audio. Returns the list and the first corpus's meta.json.
    """
    out: list[np.ndarray | None] = [None] * len(frame)
    metas = {}
    for corpus, part in frame.groupby("corpus", sort=False):
        feats, metas[corpus] = load_features(features_root / str(corpus))
        for i, utt, s0, s1 in zip(
            part.index, part["utt_id"], part["seg_start"], part["seg_end"], strict=True
        ):
            if utt not in feats:
                continue
            a = feats[utt]
            a = a[:, -1] if a.ndim == 3 else a  # all-layer features: the last layer
            seg = a[segment_frames(float(s0), float(s1), len(a))]
            out[i] = seg.astype(np.float32) if len(seg) else None
    dims = {c: (m["dim"], m["encoder"]) for c, m in metas.items()}
    if len(set(dims.values())) != 1:
        raise DataError(f"{features_root}: corpora have different acoustic features {dims}")
    return out, next(iter(metas.values()))


def fit_acoustic(
    series: list[np.ndarray], ap: AnalyzeParams, seed: int, device: str
) -> tuple[SoftDTWKMeans, np.ndarray, np.ndarray]:
    """Soft-DTW k-means on z-normalised series; returns the model, the mean and std (D,)."""
    frames = np.concatenate(series)  # (sum T_i, D)
    mean, std = frames.mean(axis=0), np.maximum(frames.std(axis=0), 1e-6)
    km = SoftDTWKMeans(
        n_clusters=ap.fig2_k,
        gamma=ap.fig2_gamma,
        max_iter=FIG2_MAX_ITER,
        tol=1e-4,
        random_state=seed,
        device=device,
    )
    km.fit([(s - mean) / std for s in series])
    return km, mean, std


def fig2_fit_rows(frame: pd.DataFrame, ok: np.ndarray, ap: AnalyzeParams, seed: int) -> np.ndarray:
    """Row indices of fit-split segments with features, seeded subsample to fig2_max_fit."""
    idx = np.flatnonzero(ok & (frame["split"].to_numpy() == FIG2_FIT_SPLIT))
    if len(idx) < ap.fig2_k:
        raise DataError(
            f"Fig. 2: {len(idx)} {FIG2_FIT_SPLIT!r} segments with acoustic features, fewer than "
            f"analyze.fig2_k={ap.fig2_k}"
        )
    if len(idx) > ap.fig2_max_fit:
        idx = np.sort(np.random.default_rng(seed).choice(idx, ap.fig2_max_fit, replace=False))
    return idx


@dataclass(frozen=True)
class AcousticInputs:
    """Acoustic frames per segment row (None without), which rows have them, the fit rows, meta."""

    series: list[np.ndarray | None]
    ok: np.ndarray  # (n,) bool
    fit_rows: np.ndarray  # row indices
    meta: dict[str, Any]  # the features' meta.json


def acoustic_inputs(
    frame: pd.DataFrame, features_root: Path, ap: AnalyzeParams, seed: int
) -> AcousticInputs:
    """Load every row's acoustic frames (warning about rows without) and pick the fit rows."""
    series, meta = acoustic_segments(frame, features_root)
    ok = np.array([s is not None for s in series])
    if (~ok).any():
        log.warning(
            "Fig. 2: %d of %d segments have no acoustic frames (utterance skipped by "
            "the features stage); left out",
            int((~ok).sum()),
            len(ok),
        )
    return AcousticInputs(series, ok, fig2_fit_rows(frame, ok, ap, seed), meta)


def association_tables(
    kept: pd.DataFrame, k_ag: int, k_ac: int, emotions: tuple[str, ...], seed: int
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, float]], pd.DataFrame]:
    """Per group the (k_ag, k_ac) counts, association measures and fig2.csv rows of ``kept``.

    Groups: "all", then each emotion in the paper's order; ``kept`` has the columns ``emotion``,
    ``cluster`` (AG id) and ``acoustic`` (acoustic id).
    """
    rng = np.random.default_rng(seed)
    groups = [("all", kept)] + [
        (e, kept[kept["emotion"] == e]) for e in EMOTION_ORDER if e in emotions
    ]
    tables, stats, rows = {}, {}, []
    for name, part in groups:
        ag, ac = part["cluster"].to_numpy(), part["acoustic"].to_numpy()
        tables[name] = association_counts(ag, ac, k_ag, k_ac)
        stats[name] = association(ag, ac, k_ag, k_ac, rng)
        shares = row_shares(tables[name])
        rows += [
            {
                "emotion": name,
                "ag_cluster": i + 1,
                "acoustic_cluster": j + 1,
                "count": int(c),
                "share": round(float(shares[i, j]), 6),
            }
            for (i, j), c in np.ndenumerate(tables[name])
        ]
    return tables, stats, pd.DataFrame(rows)


def association_metrics(stats: dict[str, dict[str, float]], k_ac: int, n: int) -> dict[str, float]:
    """Flat Fig. 2 metrics: k, segment count and every finite association measure per group."""
    return {"fig2.k": k_ac, "fig2.n_segments": n} | {
        f"fig2.{key}.{name}": round(v, 4)
        for name, s in stats.items()
        for key, v in s.items()
        if np.isfinite(v)
    }
