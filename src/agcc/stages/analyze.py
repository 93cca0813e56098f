"""Stage ``analyze``: the paper's Table I (cross-corpus AG cluster overlap) and Fig. 1.

Table I (paper Sec. II-C.1, METHOD.md sec. 5) compares how the two corpora spread the segments of
each vowel over the AG clusters. With N(c, i) the number of corpus c's segments in cluster i and
N(c) = sum_i N(c, i), the share is p(c, i) = N(c, i) / N(c) and the per-cluster overlap is
o(i) = 100 * min(p(1, i), p(2, i)) / max(p(1, i), p(2, i)), 0 where a corpus has none. A cluster
is *common* when both corpora have segments in it and o(i) >= ``analyze.common_threshold`` (the
paper's 25 %). The top of the table is o(i) per cluster and vowel over all emotions; the bottom
is the average overlap (mean of o over the common clusters) per vowel and emotion, which
reproduces the paper's numbers (e.g. /a/ "All" 68.8 = mean(75.3, 70.4, 61.2, 68.4)). Eq. 1 as
printed, Sim = (100 / K) * sum over the K common clusters of min(p1, p2), is reported as extra
"Eq. 1 Sim" rows. Every split of both corpora is used (the clusters are fitted on the validation
split only, but the overlap describes the corpora as a whole, and more segments give steadier
shares). A vowel/emotion cell where a corpus has no segment, or where no cluster is common, is
NaN ("-" in the Markdown table) and is left out of ``metrics.json``.

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
model saw) on the 50 frames/s grid (:func:`agcc.stages.features.segment_frames`);
all-layer features use
their last layer. Each dimension is z-normalised with the mean and std of the fit frames, so no
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
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agcc import tracking
from agcc.devices import resolve_device
from agcc.io.cluster_model import AGModel, load_model, read_assignments
from agcc.io.segments import load_corpora
from agcc.mouth import mouth_column
from agcc.overlap import average_overlap, cluster_shares, common_clusters, eq1_similarity, overlap
from agcc.params import VOWELS, AnalyzeParams, BaseParams
from agcc.sdtw import centroid_series

log = logging.getLogger(__name__)

IPA = {"AA": "/a/", "AH": "/ə/", "EH": "/ɛ/", "IY": "/i/", "AE": "/æ/", "UW": "/u/"}
#: The paper's row order for the emotion-specific averages.
EMOTION_ORDER = ("neutral", "happiness", "anger", "sadness")
FIG1_TRACES = ((48, "x"), (54, "x"), (57, "y"))
FIG2_FIT_SPLIT = "val"
FIG2_MAX_ITER = 30
FIG2_PERMUTATIONS = 50


# ---------------------------------------------------------------------------------------------
# Overlap measures (pure)


# ---------------------------------------------------------------------------------------------
# Table I


def corpus_counts(frame: pd.DataFrame, corpora: tuple[str, str], k: int) -> np.ndarray:
    """Counts N(c, i) (2, k) of the rows of ``frame`` (corpus, cluster) per corpus and cluster."""
    return np.stack(
        [np.bincount(frame.loc[frame["corpus"] == c, "cluster"], minlength=k) for c in corpora]
    )


def _cell(frame: pd.DataFrame, corpora: tuple[str, str], k: int, thr: float) -> tuple[float, float]:
    """Average overlap and Eq. 1 Sim of one vowel/emotion subset (NaN if a corpus is empty)."""
    counts = corpus_counts(frame, corpora, k)
    if (counts.sum(axis=1) == 0).any():
        return math.nan, math.nan
    p = cluster_shares(counts)
    o = overlap(p[0], p[1])
    return average_overlap(o, thr), eq1_similarity(p[0], p[1], common_clusters(o, thr))


def table1(
    frame: pd.DataFrame,
    corpora: tuple[str, str],
    k: int,
    emotions: tuple[str, ...],
    threshold: float,
) -> pd.DataFrame:
    """Table I from segment assignments (columns corpus, vowel, emotion, cluster).

    Returns a frame with columns ``section`` (overlap | average | eq1), ``row`` (Cluster_1 ..
    Cluster_k, then All and one row per emotion in the paper's order) and one column per vowel
    in IPA (/a/ /ə/ /ɛ/ /i/ /æ/ /u/).
    """
    rows = [("All", None)] + [(e.capitalize(), e) for e in EMOTION_ORDER if e in emotions]
    top = {f"Cluster_{i + 1}": {} for i in range(k)}
    avg: dict[str, dict[str, float]] = {name: {} for name, _ in rows}
    eq1: dict[str, dict[str, float]] = {name: {} for name, _ in rows}
    for v in VOWELS:
        sub = frame[frame["vowel"] == v]
        p = cluster_shares(corpus_counts(sub, corpora, k))
        for i, o in enumerate(overlap(p[0], p[1])):
            top[f"Cluster_{i + 1}"][IPA[v]] = o
        for name, emotion in rows:
            cell = sub if emotion is None else sub[sub["emotion"] == emotion]
            avg[name][IPA[v]], eq1[name][IPA[v]] = _cell(cell, corpora, k, threshold)
    parts = [
        pd.DataFrame.from_dict(d, orient="index").rename_axis("row").reset_index().assign(section=s)
        for s, d in (("overlap", top), ("average", avg), ("eq1", eq1))
    ]
    return pd.concat(parts, ignore_index=True)[["section", "row", *IPA.values()]]


def table1_markdown(table: pd.DataFrame, corpora: tuple[str, str], threshold: float) -> str:
    """Table I as Markdown in the paper's layout; NaN cells are shown as "-"."""
    cols = list(IPA.values())

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    def fmt(x: float) -> str:
        return "-" if not np.isfinite(x) else f"{x:.1f}"

    out = [
        f"Percentage overlap of AG clusters across corpora ({corpora[0]} vs {corpora[1]}) for six "
        f"vowels; averages over the common clusters (overlap >= {threshold:g} %).",
        "",
        line(["AG Cluster", *cols]),
        line(["---"] + ["---:"] * len(cols)),
    ]
    titles = {"average": "**Average Cluster Overlap**", "eq1": "**Eq. 1 Sim**"}
    for section, part in table.groupby("section", sort=False):
        if section in titles:
            out.append(line([titles[section]] + [""] * len(cols)))
        out += [line([r["row"], *(fmt(r[c]) for c in cols)]) for _, r in part.iterrows()]
    return "\n".join(out) + "\n"


def table1_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Finite average overlaps and Eq. 1 values as flat metrics, e.g. ``avg_overlap.all.AA``."""
    to_code = {ipa: code for code, ipa in IPA.items()}
    metrics = {}
    for section, key in (("average", "avg_overlap"), ("eq1", "eq1_sim")):
        part = table[table["section"] == section].set_index("row")[list(IPA.values())]
        for row, values in part.iterrows():
            metrics |= {
                f"{key}.{str(row).lower()}.{to_code[ipa]}": round(float(x), 4)
                for ipa, x in values.items()
                if np.isfinite(x)
            }
        all_values = part.loc["All"].to_numpy(float)
        if np.isfinite(all_values).any():
            metrics[f"{key}.all.mean"] = round(float(np.nanmean(all_values)), 4)
    return metrics


# ---------------------------------------------------------------------------------------------
# Fig. 1


def pick_fig1_clusters(
    frame: pd.DataFrame, corpora: tuple[str, str], vowels: tuple[str, str], k: int, thr: float
) -> tuple[int, int]:
    """Cluster ids (0-based) for Fig. 1: each vowel's most populous common cluster, distinct.

    Candidates of a vowel are ranked by (common, present in both corpora, N(1, i) + N(2, i)),
    best first, smaller id on ties; the second vowel skips the first pick.
    """
    picks: list[int] = []
    for v in vowels:
        counts = corpus_counts(frame[frame["vowel"] == v], corpora, k)  # (2, k)
        p = cluster_shares(counts)
        o = overlap(p[0], p[1])
        key = np.lexsort((-np.arange(k), counts.sum(axis=0), o > 0, common_clusters(o, thr)))
        best = [int(i) for i in key[::-1] if int(i) not in picks]
        if not best or counts[:, best[0]].sum() == 0:
            raise ValueError(
                f"Fig. 1: vowel {v!r} has no segments in a cluster other than {picks}; "
                f"counts per cluster {counts.tolist()}"
            )
        if not common_clusters(o, thr)[best[0]]:
            log.warning("Fig. 1: %s has no unused common cluster; using cluster %d", v, best[0] + 1)
        picks.append(best[0])
    return picks[0], picks[1]


def resample_linear(x: np.ndarray, length: int) -> np.ndarray:
    """Series (T, D) linearly resampled to (length, D) on a common [0, 1] time axis."""
    if len(x) == 1:
        return np.repeat(x, length, axis=0)
    src, dst = np.linspace(0.0, 1.0, len(x)), np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(dst, src, x[:, j]) for j in range(x.shape[1])], axis=1)


def member_band(members: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame-wise mean and std (length, D) of member series resampled to ``length`` frames."""
    stack = np.stack([resample_linear(m, length) for m in members])  # (n, length, D)
    return stack.mean(axis=0), stack.std(axis=0)


def _members(
    frame: pd.DataFrame,
    series: list[np.ndarray],
    corpus: str,
    vowel: str,
    cluster: int,
    n_max: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Up to ``n_max`` seeded-sampled segments of one corpus, vowel and cluster."""
    rows = frame.index[
        (frame["corpus"] == corpus) & (frame["vowel"] == vowel) & (frame["cluster"] == cluster)
    ].to_numpy()
    if len(rows) > n_max:
        rows = np.sort(rng.choice(rows, n_max, replace=False))
    return [series[i] for i in rows]


def _draw_trace(
    ax: Any, centroid: np.ndarray, members: dict[str, list[np.ndarray]], j: int
) -> None:
    """One Fig. 1 panel: column j of the centroid and, per corpus, the members' mean +- 1 std."""
    t = np.arange(len(centroid))
    handles, labels = [], []
    for n, (corpus, segs) in enumerate(members.items()):
        if not segs:
            continue
        mean, std = member_band(segs, len(centroid))  # (T, D) each
        (line,) = ax.plot(t, mean[:, j], color=f"C{n}")
        band = ax.fill_between(
            t, mean[:, j] - std[:, j], mean[:, j] + std[:, j], color=f"C{n}", alpha=0.2
        )
        handles.append((line, band))
        labels.append(f"{corpus}: mean ±1 std (n={len(segs)})")
    handles += ax.plot(t, centroid[:, j], "k--", lw=2)
    ax.legend(handles, [*labels, "centroid"], fontsize=8)


def plot_fig1(
    panels: list[tuple[str, int, np.ndarray, dict[str, list[np.ndarray]]]],
) -> Any:
    """Fig. 1: one row per (vowel, cluster, centroid (T, D), members per corpus), 3 columns.

    Columns are landmark 48 x, 54 x and 57 y; each shows the centroid and, per corpus, the
    mean +- 1 std of the resampled members. y axes point down, as in the image, so a jaw
    opening (57 y growing) goes down in the plot.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), len(FIG1_TRACES), squeeze=False)
    for row, (vowel, cluster, centroid, members) in enumerate(panels):
        for col, (point, axis) in enumerate(FIG1_TRACES):
            ax = axes[row, col]
            _draw_trace(ax, centroid, members, mouth_column(point, axis))
            ax.set_title(f"{IPA[vowel]} cluster {cluster + 1}: landmark {point} ({axis})")
            ax.set_xlabel("centroid frame (members resampled to it)")
            ax.set_ylabel(f"{axis} (inter-eye units{', down' if axis == 'y' else ''})")
            if axis == "y":
                ax.invert_yaxis()
    fig.suptitle("AG cluster trajectories: centroid and members of both corpora")
    return fig


def fig1_panels(
    frame: pd.DataFrame,
    series: list[np.ndarray],
    model: AGModel,
    corpora: tuple[str, str],
    picks: list[tuple[str, int]],
    n_max: int,
    seed: int,
) -> list[tuple[str, int, np.ndarray, dict[str, list[np.ndarray]]]]:
    """The data of Fig. 1: for each (vowel, cluster) its centroid and sampled members per corpus."""
    rng = np.random.default_rng(seed)
    cents = centroid_series(model.centroids)
    return [
        (v, c, cents[c], {cor: _members(frame, series, cor, v, c, n_max, rng) for cor in corpora})
        for v, c in picks
    ]


# ---------------------------------------------------------------------------------------------
# Fig. 2 (AG clusters vs acoustic clusters)


def association_counts(ag: np.ndarray, ac: np.ndarray, k_ag: int, k_ac: int) -> np.ndarray:
    """Contingency table N (k_ag, k_ac): N[i, j] = segments in AG cluster i and acoustic j."""
    ag, ac = np.asarray(ag, dtype=np.int64), np.asarray(ac, dtype=np.int64)
    if ag.shape != ac.shape or (ag < 0).any() or (ac < 0).any():
        raise ValueError(f"ag and ac must be equal-length ids >= 0, got {ag.shape}, {ac.shape}")
    if len(ag) and (ag.max() >= k_ag or ac.max() >= k_ac):
        raise ValueError(f"ids exceed k_ag={k_ag} / k_ac={k_ac}: {ag.max()}, {ac.max()}")
    return np.bincount(ag * k_ac + ac, minlength=k_ag * k_ac).reshape(k_ag, k_ac)


def row_shares(counts: np.ndarray) -> np.ndarray:
    r"""Row-normalised counts S[i, j] = N[i, j] / sum_j N[i, j]; NaN rows where N[i, :] = 0.

    Fig. 2's cells: the share of AG cluster i's segments that fall in acoustic cluster j.
    """
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)  # (k_ag, 1)
    out = np.full_like(counts, np.nan)
    np.divide(counts, totals, out=out, where=totals > 0)
    return out


def mean_max_row_share(counts: np.ndarray) -> float:
    r"""Mean over non-empty AG clusters of the largest row share: (1/|I|) sum_i max_j S[i, j].

    1 when every AG cluster falls into a single acoustic cluster, 1 / k_ac at the most spread;
    NaN when the table is empty.

    Args:
        counts: (k_ag, k_ac) contingency table (see :func:`association_counts`).
    """
    shares = row_shares(counts)
    rows = np.isfinite(shares).all(axis=1)
    return float(shares[rows].max(axis=1).mean()) if rows.any() else math.nan


def association(
    ag: np.ndarray, ac: np.ndarray, k_ag: int, k_ac: int, rng: np.random.Generator
) -> dict[str, float]:
    """Mean max row share, its permutation baseline and the NMI of AG vs acoustic cluster ids.

    The baseline is the mean max row share over FIG2_PERMUTATIONS shuffles of ``ac`` (same
    cluster sizes, no association). NaNs when there are no segments.
    """
    from sklearn.metrics import normalized_mutual_info_score

    if len(ag) == 0:
        return {"max_row_share": math.nan, "max_row_share_perm": math.nan, "nmi": math.nan}
    perm = [
        mean_max_row_share(association_counts(ag, rng.permutation(ac), k_ag, k_ac))
        for _ in range(FIG2_PERMUTATIONS)
    ]
    return {
        "max_row_share": mean_max_row_share(association_counts(ag, ac, k_ag, k_ac)),
        "max_row_share_perm": float(np.mean(perm)),
        "nmi": float(normalized_mutual_info_score(ag, ac)),
    }


def acoustic_segments(
    frame: pd.DataFrame, features_root: Path
) -> tuple[list[np.ndarray | None], dict[str, Any]]:
    """Acoustic frames (T_i, D) float32 of each row's [seg_start, seg_end), or None if missing.

    A segment has no frames when its utterance was skipped by the features stage (bad audio)
    or its interval lies beyond the audio. Returns the list and the first corpus's meta.json.
    """
    from agcc.framing import segment_frames
    from agcc.io.features import load_features

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
        raise ValueError(f"{features_root}: corpora have different acoustic features {dims}")
    return out, next(iter(metas.values()))


def fit_acoustic(
    series: list[np.ndarray], ap: AnalyzeParams, seed: int, device: str
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Soft-DTW k-means on z-normalised series; returns the model, the mean and std (D,)."""
    from agcc.sdtw import SoftDTWKMeans

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
        raise ValueError(
            f"Fig. 2: {len(idx)} {FIG2_FIT_SPLIT!r} segments with acoustic features, fewer than "
            f"analyze.fig2_k={ap.fig2_k}"
        )
    if len(idx) > ap.fig2_max_fit:
        idx = np.sort(np.random.default_rng(seed).choice(idx, ap.fig2_max_fit, replace=False))
    return idx


def plot_fig2(tables: dict[str, np.ndarray], stats: dict[str, dict[str, float]]) -> Any:
    """Fig. 2: one heatmap per emotion of the (k_ag, k_ac) counts, row-normalised, one colourbar."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    n = len(tables)
    ncols = min(2, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(6.2 * ncols + 1, 5.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    cmap = colormaps["viridis"].with_extremes(bad="0.85")
    for ax, (emotion, counts) in zip(axes, tables.items(), strict=False):
        shares = row_shares(counts)
        im = ax.imshow(100 * shares, cmap=cmap, vmin=0.0, vmax=100.0, aspect="auto")
        k_ag, k_ac = counts.shape
        ax.set_xticks(range(k_ac), [str(j + 1) for j in range(k_ac)])
        ax.set_yticks(range(k_ag), [f"{i + 1} (n={int(r)})" for i, r in enumerate(counts.sum(1))])
        ax.set_xlabel("acoustic cluster")
        ax.set_ylabel("AG cluster (segments)")
        for (i, j), v in np.ndenumerate(shares):
            if np.isfinite(v) and v >= 0.05:
                ax.text(
                    j,
                    i,
                    f"{100 * v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="k" if v > 0.6 else "w",
                )
        s = stats[emotion]
        ax.set_title(
            f"{emotion.capitalize()}: mean max share {s['max_row_share']:.2f} "
            f"(chance {s['max_row_share_perm']:.2f}), NMI {s['nmi']:.2f}",
            fontsize=10,
        )
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes[:n].tolist(), label="% of the AG cluster's segments", shrink=0.8)
    fig.suptitle("AG clusters (rows) vs acoustic clusters (columns) per emotion, row-normalised")
    return fig


def fig2(
    frame: pd.DataFrame,
    features_root: Path,
    k_ag: int,
    ap: AnalyzeParams,
    base: BaseParams,
    out_dir: Path,
    st: tracking.StageRun,
) -> dict[str, float]:
    """Fit the acoustic clusters, assign every segment, draw fig2.png, write fig2.csv; metrics."""
    series, meta = acoustic_segments(frame, features_root)
    ok = np.array([s is not None for s in series])
    if (~ok).any():
        log.warning(
            "Fig. 2: %d of %d segments have no acoustic frames (utterance skipped by "
            "the features stage); left out",
            int((~ok).sum()),
            len(ok),
        )
    fit_rows = fig2_fit_rows(frame, ok, ap, base.seed)
    device = resolve_device("auto")
    fit_params = {
        "k": ap.fig2_k,
        "gamma": ap.fig2_gamma,
        "n_fit": len(fit_rows),
        "device": device,
        "encoder": meta["encoder"],
        "dim": meta["dim"],
        "seed": base.seed,
    }
    log.info(
        "Fig. 2: acoustic Soft-DTW k-means, k=%d, on %d %r segments (%s features)",
        ap.fig2_k,
        len(fit_rows),
        FIG2_FIT_SPLIT,
        meta["encoder"],
    )
    with st.child("fig2:acoustic_kmeans", fit_params) as child:
        km, mean, std = fit_acoustic([series[i] for i in fit_rows], ap, base.seed, device)
        child.log_metrics({"inertia": km.inertia_, "n_iter": km.n_iter_})
    rows = np.flatnonzero(ok)
    kept = frame.iloc[rows].assign(acoustic=km.predict([(series[i] - mean) / std for i in rows]))
    return fig2_outputs(kept, k_ag, ap, base, out_dir, st) | {
        "fig2.n_fit": len(fit_rows),
        "fig2.inertia": float(km.inertia_),
        "fig2.n_segments_without_features": int((~ok).sum()),
    }


def fig2_outputs(
    kept: pd.DataFrame,
    k_ag: int,
    ap: AnalyzeParams,
    base: BaseParams,
    out_dir: Path,
    st: tracking.StageRun,
) -> dict[str, float]:
    """Per-emotion tables, association metrics, fig2.png and fig2.csv from the assignments."""
    rng = np.random.default_rng(base.seed)
    groups = [("all", kept)] + [
        (e, kept[kept["emotion"] == e]) for e in EMOTION_ORDER if e in base.emotions
    ]
    tables, stats, rows = {}, {}, []
    for name, part in groups:
        ag, ac = part["cluster"].to_numpy(), part["acoustic"].to_numpy()
        tables[name] = association_counts(ag, ac, k_ag, ap.fig2_k)
        stats[name] = association(ag, ac, k_ag, ap.fig2_k, rng)
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
    pd.DataFrame(rows).to_csv(out_dir / "fig2.csv", index=False)
    fig = plot_fig2({e: t for e, t in tables.items() if e != "all"}, stats)
    fig.savefig(out_dir / "fig2.png", dpi=110)
    st.log_artifact(out_dir / "fig2.csv")
    st.log_artifact(out_dir / "fig2.png")
    return {"fig2.k": ap.fig2_k, "fig2.n_segments": len(kept)} | {
        f"fig2.{key}.{name}": round(v, 4)
        for name, s in stats.items()
        for key, v in s.items()
        if np.isfinite(v)
    }


# ---------------------------------------------------------------------------------------------
# Stage


def write_table1(table: pd.DataFrame, corpora: tuple[str, str], thr: float, out: Path) -> None:
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
        raise ValueError(f"analyze compares two corpora, got {len(seg_dirs)} segments folder(s)")
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
        write_table1(t1, corpora, ap.common_threshold, out_dir)
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
        if features_root is not None:
            log.info("Fig. 2: AG vs acoustic clusters from %s", features_root)
            st.metrics |= fig2(frame, Path(features_root), model.k, ap, base, out_dir, st)
    return t1
