"""The elbow sweep figure of the cluster stage: inertia and silhouette against k."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from agcc.figures import demo_prefix


def plot_elbow(
    curve: pd.DataFrame, k_elbow: int, k_chosen: int, corpora: Iterable[str] = ()
) -> Any:
    """Inertia (left axis) and silhouette (right axis) against k, elbow and chosen k marked.

    The title starts with DEMO when ``corpora`` (the clustered corpora) are the demo ones.
    """
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
    ax.set_title(f"{demo_prefix(corpora)}AG clustering: elbow sweep")
    return fig
