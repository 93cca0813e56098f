"""Fig. 2 of the paper: AG against acoustic clusters, one row-normalised heatmap per emotion."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from agcc.figures import FONT, PAGE_WIDTH, demo_prefix
from agcc.stats import row_shares


def plot_fig2(
    tables: dict[str, np.ndarray], stats: dict[str, dict[str, float]], corpora: Iterable[str] = ()
) -> Any:
    """Fig. 2: one heatmap per emotion of the (k_ag, k_ac) counts, row-normalised, one colourbar.

    The title starts with DEMO when ``corpora`` are the demo ones; drawn at page width with
    8-point type (6-point cell values).
    """
    import matplotlib

    with matplotlib.rc_context(FONT):
        return _draw_fig2(tables, stats, corpora)


def _draw_fig2(
    tables: dict[str, np.ndarray], stats: dict[str, dict[str, float]], corpora: Iterable[str]
) -> Any:
    """The figure of :func:`plot_fig2` (inside its font settings)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    n = len(tables)
    ncols = min(2, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(PAGE_WIDTH, 3.3 * nrows + 0.4), layout="constrained")
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
                    fontsize=6,
                    color="k" if v > 0.6 else "w",
                )
        s = stats[emotion]
        ax.set_title(
            f"{emotion.capitalize()}: mean max share {s['max_row_share']:.2f}\n"
            f"(chance {s['max_row_share_perm']:.2f}), NMI {s['nmi']:.2f}"
        )
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes[:n].tolist(), label="% of the AG cluster's segments", shrink=0.8)
    title = "AG (rows) vs acoustic clusters (columns) per emotion, row-normalised"
    fig.suptitle(demo_prefix(corpora) + title)
    return fig
