"""Matplotlib figures of the stages (Agg backend; callers save, log and close them).

One module per figure so that a stage depends only on the figures it draws: :mod:`.elbow`
(cluster), :mod:`.fig1` and :mod:`.fig2` (analyze), :mod:`.table2` (evaluate); the confusion
matrix here is drawn by the train stage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

#: Name prefix of the simulated corpora the demo stage generates (demo_crema, demo_improv).
DEMO_PREFIX = "demo_"
#: Figure width (inches) of a two-column paper page; figures are drawn at this width with
#: 8-point type, so their text stays readable printed at column width.
PAGE_WIDTH = 7.16
FONT = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 8}


def demo_prefix(corpora: Iterable[str]) -> str:
    """``"DEMO: "`` when any corpus is a simulated demo corpus (named ``demo_*``), else ``""``.

    The demo stage names its corpora ``demo_crema`` and ``demo_improv``; a title or heading
    starting with DEMO says that its numbers are not results on real corpora.
    """
    return "DEMO: " if any(str(c).startswith(DEMO_PREFIX) for c in corpora) else ""


def plot_confusion(cm: np.ndarray, labels: list[str] | tuple[str, ...], title: str) -> Any:
    """A row-normalised confusion matrix (true x predicted) with counts, as a Figure.

    The title gets the DEMO prefix when it names a demo corpus (a word starting ``demo_``).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 4.2), layout="constrained")
    ax = fig.subplots()
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, vmin=0.0, vmax=1.0, cmap="Blues")
    for (i, j), n in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            f"{n}\n{share[i, j]:.0%}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if share[i, j] > 0.5 else "black",
        )
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(demo_prefix(re.findall(r"[\w-]+", title)) + title, fontsize=9)
    return fig
