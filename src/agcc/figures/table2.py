"""The Table II figure of the evaluate stage: 4-class UAR per row with the seed spread."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def plot_table2(t2: pd.DataFrame) -> Any:
    """Horizontal bars of the 4-class UAR per Table II row, with the seed std as error bars."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 0.45 * len(t2) + 1.2), layout="constrained")
    ax = fig.subplots()
    labels = [f"{r['method_label']} ({r['direction_label']})" for _, r in t2.iterrows()]
    y = np.arange(len(t2))[::-1]
    colours = [f"C{i % 10}" for i in pd.factorize(t2["direction"])[0]]
    ax.barh(y, t2["uar_4cat_mean"], xerr=t2["uar_4cat_std"].fillna(0.0), color=colours, capsize=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(100.0 / 4, color="grey", ls=":", lw=1)
    ax.set_xlabel("4-class UAR (%) on the target test split; ± std over seeds")
    ax.set_title("Table II (this pipeline)")
    return fig
