"""Fig. 1 of the paper: AG cluster centroids and the members of both corpora, per landmark trace."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from agcc.figures import FONT, PAGE_WIDTH, demo_prefix
from agcc.io.cluster_model import AGModel
from agcc.mouth import mouth_column
from agcc.overlap import IPA
from agcc.sdtw import centroid_series, resample

#: Fig. 1 columns: (landmark, axis) of the traced mouth coordinates.
FIG1_TRACES = ((48, "x"), (54, "x"), (57, "y"))


def member_band(members: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame-wise mean and std (length, D) of member series resampled to ``length`` frames."""
    stack = np.stack([resample(m, length) for m in members])  # (n, length, D)
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
) -> dict[str, Any]:
    """One Fig. 1 panel: column j of the centroid and, per corpus, the members' mean +- 1 std.

    Returns the legend entries (label -> handle); each corpus's member count goes in the
    panel's corner, in its colour.
    """
    t = np.arange(len(centroid))
    handles = {}
    for n, (corpus, segs) in enumerate(members.items()):
        if not segs:
            continue
        mean, std = member_band(segs, len(centroid))  # (T, D) each
        (line,) = ax.plot(t, mean[:, j], color=f"C{n}", lw=1.2)
        band = ax.fill_between(
            t, mean[:, j] - std[:, j], mean[:, j] + std[:, j], color=f"C{n}", alpha=0.2, lw=0
        )
        handles[f"{corpus} members: mean ± 1 std"] = (line, band)
        ax.text(0.02 + 0.2 * n, 0.03, f"n={len(segs)}", transform=ax.transAxes, color=f"C{n}")
    (line,) = ax.plot(t, centroid[:, j], "k--", lw=1.5)
    handles["cluster centroid"] = line
    return handles


def plot_fig1(
    panels: list[tuple[str, int, np.ndarray, dict[str, list[np.ndarray]]]],
) -> Any:
    """Fig. 1: one row per (vowel, cluster, centroid (T, D), members per corpus), 3 columns.

    Columns are landmark 48 x, 54 x and 57 y; each shows the centroid and, per corpus, the
    mean +- 1 std of the resampled members (their counts in the panel's corner). y axes point
    down, as in the image, so a jaw opening (57 y growing) goes down in the plot. One legend
    for the figure; drawn at page width with 8-point type; the title starts with DEMO for the
    demo corpora.
    """
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(FONT):
        fig = Figure(figsize=(PAGE_WIDTH, 1.9 * len(panels) + 0.9), layout="constrained")
        axes = fig.subplots(len(panels), len(FIG1_TRACES), squeeze=False)
        handles: dict[str, Any] = {}
        for row, (vowel, cluster, centroid, members) in enumerate(panels):
            for col, (point, axis) in enumerate(FIG1_TRACES):
                ax = axes[row, col]
                handles |= _draw_trace(ax, centroid, members, mouth_column(point, axis))
                ax.set_title(f"{IPA[vowel]} cluster {cluster + 1}: point {point} {axis}")
                if row == len(panels) - 1:
                    ax.set_xlabel("centroid frame")
                if axis == "y":
                    ax.invert_yaxis()
            axes[row, 0].set_ylabel("position (inter-eye units)")
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=3)
        corpora = [c for *_, members in panels for c in members]
        title = "AG cluster trajectories of both corpora (y grows downwards, as in the image)"
        fig.suptitle(demo_prefix(corpora) + title)
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
