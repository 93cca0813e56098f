"""Stage ``analyze``: the paper's Table I (cross-corpus AG cluster overlap) and Fig. 1.

Table I (paper Sec. II-C.1, docs/method.md section 5) compares how the two corpora spread the
segments of each vowel over the AG clusters. With N(c, i) the number of corpus c's segments in
cluster i and N(c) = sum_i N(c, i), the share is p(c, i) = N(c, i) / N(c) and the per-cluster
overlap is o(i) = 100 * min(p(1, i), p(2, i)) / max(p(1, i), p(2, i)), 0 where a corpus has none. A
cluster is *common* when both corpora have segments in it and o(i) >= ``analyze.common_threshold``
(the paper's 25 %). The top of the table is o(i) per cluster and vowel over all emotions; the
bottom is the average overlap (mean of o over the common clusters) per vowel and emotion, which
reproduces the paper's numbers (e.g. /a/ "All" 68.8 = mean(75.3, 70.4, 61.2, 68.4)). Eq. 1 as
printed, Sim = (100 / K) * sum over the K common clusters of min(p1, p2), is reported as extra
"Eq. 1 Sim" rows. Every split of both corpora is used (the clusters are fitted on the validation
split only, but the overlap describes the corpora as a whole, and more segments give steadier
shares). A vowel/emotion cell where a corpus has no segment, or where no cluster is common, is NaN
("-" in the Markdown table) and is left out of ``metrics.json``.

Fig. 1 picks two clusters automatically: for ``analyze.fig1_vowels[0]`` its most populous common
cluster (largest N(1, i) + N(2, i) over that vowel's segments), for ``fig1_vowels[1]`` its most
populous common cluster other than the first. When a vowel has no common cluster, clusters with
segments of both corpora are used, then any other cluster. For each, it plots the trajectories of
landmarks 48 (x), 54 (x) and 57 (y): the centroid, and per corpus the frame-wise mean and +-1 std
band of up to ``analyze.fig1_samples`` member segments of that vowel (a seeded sample), each
linearly resampled to the centroid's length so frames line up.

Fig. 2 (paper Sec. II-C.2; drawn when the acoustic features are given) asks whether segments of
one AG cluster also sound alike. A second Soft-DTW k-means (``analyze.fig2_k`` = 10 clusters, the
batched torch engine of :mod:`agcc.sdtw`) is fitted on the acoustic frame sequences of the
validation-split segments of both corpora (the AG model's fit split; a seeded subsample of at
most ``analyze.fig2_max_fit``), and every segment of every split gets an acoustic cluster. A
segment's acoustic frames are those of its interval [seg_start, seg_end) (the interval the AG
model saw) on the 50 frames/s grid (:func:`agcc.framing.segment_frames`); all-layer features
use their last layer. Each dimension is z-normalised with the mean and std of the fit frames, so no
log-mel band dominates the cost. On that scale two unrelated 80-dim frames are about 2D = 160
apart and neighbouring frames of a vowel about 20, so ``analyze.fig2_gamma`` = 1 keeps soft-DTW
close to DTW (the soft minimum over three paths costs at most gamma ln 3 ~ 1.1 per step) while
smoothing the barycentres; with other feature widths the scale grows with D. Per emotion, the
heatmap shows the row-normalised counts: the share of an AG cluster's segments (both corpora,
all splits) in each acoustic cluster; AG clusters without segments of that emotion are grey.
The association is summarised by the mean over AG clusters of the largest row share (1 = every
AG cluster maps onto a single acoustic cluster), next to the same number with the acoustic ids
permuted within the emotion (its chance level for these cluster sizes), and the normalised
mutual information between AG and acoustic cluster ids (sklearn, arithmetic mean).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from agcc import tracking
from agcc.acoustic import (
    FIG2_FIT_SPLIT,
    acoustic_inputs,
    association_metrics,
    association_tables,
    fit_acoustic,
)
from agcc.devices import resolve_device
from agcc.errors import ConfigError
from agcc.figures.fig1 import fig1_panels, plot_fig1
from agcc.figures.fig2 import plot_fig2
from agcc.io.cluster_model import load_model, read_assignments
from agcc.io.segments import load_corpora
from agcc.overlap import pick_fig1_clusters
from agcc.params import AnalyzeParams, BaseParams
from agcc.stats import (  # noqa: F401  # TEMP re-export (restructure)
    association,
    association_counts,
    mean_max_row_share,
    row_shares,
)
from agcc.tables import table1, table1_markdown, table1_metrics

log = logging.getLogger(__name__)


def _fig2(
    frame: pd.DataFrame,
    features_root: Path,
    k_ag: int,
    ap: AnalyzeParams,
    base: BaseParams,
    out_dir: Path,
    st: tracking.StageRun,
) -> dict[str, float]:
    """Fit the acoustic clusters, assign every segment, draw fig2.png, write fig2.csv; metrics."""
    inputs = acoustic_inputs(frame, features_root, ap, base.seed)
    device = resolve_device("auto")
    fit_params = {
        "k": ap.fig2_k,
        "gamma": ap.fig2_gamma,
        "n_fit": len(inputs.fit_rows),
        "device": device,
        "encoder": inputs.meta["encoder"],
        "dim": inputs.meta["dim"],
        "seed": base.seed,
    }
    log.info(
        "Fig. 2: acoustic Soft-DTW k-means, k=%d, on %d %r segments (%s features)",
        ap.fig2_k,
        len(inputs.fit_rows),
        FIG2_FIT_SPLIT,
        inputs.meta["encoder"],
    )
    with st.child("fig2:acoustic_kmeans", fit_params) as child:
        fit_series = [inputs.series[i] for i in inputs.fit_rows]
        km, mean, std = fit_acoustic(fit_series, ap, base.seed, device)
        child.log_metrics({"inertia": km.inertia_, "n_iter": km.n_iter_})
    rows = np.flatnonzero(inputs.ok)
    acoustic = km.predict([(inputs.series[i] - mean) / std for i in rows])
    kept = frame.iloc[rows].assign(acoustic=acoustic)
    tables, stats, csv = association_tables(kept, k_ag, ap.fig2_k, base.emotions, base.seed)
    csv.to_csv(out_dir / "fig2.csv", index=False)
    fig = plot_fig2({e: t for e, t in tables.items() if e != "all"}, stats, set(kept["corpus"]))
    fig.savefig(out_dir / "fig2.png", dpi=110)
    st.log_artifact(out_dir / "fig2.csv")
    st.log_artifact(out_dir / "fig2.png")
    return association_metrics(stats, ap.fig2_k, len(kept)) | {
        "fig2.n_fit": len(inputs.fit_rows),
        "fig2.inertia": float(km.inertia_),
        "fig2.n_segments_without_features": int((~inputs.ok).sum()),
    }


def _write_table1(table: pd.DataFrame, corpora: tuple[str, str], thr: float, out: Path) -> None:
    """Write table1.csv (one decimal) and table1.md."""
    out.mkdir(parents=True, exist_ok=True)
    table.round(1).to_csv(out / "table1.csv", index=False)
    (out / "table1.md").write_text(table1_markdown(table, corpora, thr), encoding="utf-8")


def run(
    seg_dirs: list[Path],
    cluster_dir: Path,
    ap: AnalyzeParams,
    base: BaseParams,
    out_dir: Path,
    features_root: Path | None = None,
) -> pd.DataFrame:
    """Table I and Fig. 1 (Fig. 2 too with ``features_root``) for the first two corpora."""
    out_dir, cluster_dir = Path(out_dir), Path(cluster_dir)
    if len(seg_dirs) < 2:
        raise ConfigError(f"analyze compares two corpora, got {len(seg_dirs)} segments folder(s)")
    if len(seg_dirs) > 2:
        log.warning("analyze uses the first two corpora only; ignoring %s", seg_dirs[2:])
    params = {
        "analyze": ap.model_dump(),
        "seed": base.seed,
        "emotions": base.emotions,
        "segments": [str(d) for d in seg_dirs[:2]],
        "clusters": str(cluster_dir),
        "features": str(features_root) if features_root else None,
    }
    with tracking.stage_run("analyze", params=params, metrics_path=out_dir / "metrics.json") as st:
        log.info("loading segments and the AG model from %s", cluster_dir)
        table, series = load_corpora([Path(d) for d in seg_dirs[:2]])
        st.skips.n_seen = len(table)
        model = load_model(cluster_dir / "model.npz")
        frame = read_assignments(cluster_dir, table, model.k)
        corpora = (str(table["corpus"].iloc[0]), str(table["corpus"].iloc[-1]))
        log.info("Table I: %s vs %s, k=%d, all splits", corpora[0], corpora[1], model.k)
        t1 = table1(frame, corpora, model.k, base.emotions, ap.common_threshold)
        _write_table1(t1, corpora, ap.common_threshold, out_dir)
        c1, c2 = pick_fig1_clusters(frame, corpora, ap.fig1_vowels, model.k, ap.common_threshold)
        log.info(
            "Fig. 1: %s in cluster %d, %s in cluster %d",
            ap.fig1_vowels[0],
            c1 + 1,
            ap.fig1_vowels[1],
            c2 + 1,
        )
        picks = list(zip(ap.fig1_vowels, (c1, c2), strict=True))
        panels = fig1_panels(frame, series, model, corpora, picks, ap.fig1_samples, base.seed)
        plot_fig1(panels).savefig(out_dir / "fig1.png", dpi=110)
        for name in ("table1.csv", "table1.md", "fig1.png"):
            st.log_artifact(out_dir / name)
        st.metrics |= table1_metrics(t1) | {
            "k": model.k,
            "fig1.cluster_1": c1 + 1,
            "fig1.cluster_2": c2 + 1,
        }
        st.metrics |= {f"n_segments.{c}": int((table["corpus"] == c).sum()) for c in corpora}
        st.headline["overlap"] = st.metrics.get("avg_overlap.all.mean", float("nan"))
        if features_root is not None:
            log.info("Fig. 2: AG vs acoustic clusters from %s", features_root)
            st.metrics |= _fig2(frame, Path(features_root), model.k, ap, base, out_dir, st)
    return t1
