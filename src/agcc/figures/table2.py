"""The Table II figure of the evaluate stage: 4-class UAR per row with the seed spread."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from agcc.figures import FONT, PAGE_WIDTH, demo_prefix


def plot_table2(t2: pd.DataFrame) -> Any:
    """Horizontal bars of the 4-class UAR per Table II row, with the seed std as error bars.

    Bars are coloured by direction (legend); the dotted line is chance (100 / 4 %). The title
    starts with DEMO when the corpora are the demo ones.
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    with matplotlib.rc_context(FONT):
        fig = Figure(figsize=(PAGE_WIDTH, 0.24 * len(t2) + 1.8), layout="constrained")
        ax = fig.subplots()
        y = np.arange(len(t2))[::-1]
        codes, directions = pd.factorize(t2["direction"])
        colours = [f"C{i % 10}" for i in codes]
        xerr = t2["uar_4cat_std"].fillna(0.0)
        ax.barh(y, t2["uar_4cat_mean"], xerr=xerr, color=colours, capsize=2, height=0.7)
        ax.set_yticks(y, t2["method_label"])
        chance = ax.axvline(100.0 / 4, color="0.3", ls=":", lw=1)
        labels = dict(zip(t2["direction"], t2["direction_label"], strict=False))
        handles = [Patch(color=f"C{i % 10}") for i in range(len(directions))] + [chance]
        names = [labels[d] for d in directions] + ["chance (25 %)"]
        fig.legend(handles, names, loc="outside lower center", ncols=3, title="direction")
        ax.set_xlim(0, 100)
        ax.set_xlabel("4-class UAR (%) on the target test split; error bar: std over seeds")
        corpora = [*t2["source"], *t2["target"]]
        ax.set_title(f"{demo_prefix(corpora)}Table II (this pipeline)")
    return fig
