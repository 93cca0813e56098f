"""Figures say DEMO for the demo corpora, label their legends; Fig. 1 has one legend."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agcc.figures import PAGE_WIDTH, demo_prefix, plot_confusion
from agcc.figures.fig1 import plot_fig1
from agcc.figures.table2 import plot_table2


def _t2(source: str, target: str) -> pd.DataFrame:
    """A two-row Table II: source_only and ag_cc on one direction, plus an upper bound."""
    rows = [
        ("Source only", f"{source}_to_{target}", f"{source}→{target}", source, target, 35.0),
        ("AG-CC", f"{source}_to_{target}", f"{source}→{target}", source, target, 45.0),
        ("Upper Bound", f"{target}_to_{target}", f"{target}→{target}", target, target, 80.0),
    ]
    cols = ["method_label", "direction", "direction_label", "source", "target", "uar_4cat_mean"]
    return pd.DataFrame(rows, columns=cols).assign(uar_4cat_std=2.0)


def test_demo_prefix_follows_the_corpus_names() -> None:
    assert demo_prefix(["demo_crema", "demo_improv"]) == "DEMO: "
    assert demo_prefix(["crema_d", "msp_improv"]) == ""
    assert demo_prefix([]) == ""


def test_table_headings_say_demo_for_demo_corpora() -> None:
    from agcc.tables import table1_markdown

    table = pd.DataFrame(columns=["section", "row", "/a/", "/ə/", "/ɛ/", "/i/", "/æ/", "/u/"])
    demo = table1_markdown(table, ("demo_crema", "demo_improv"), 25.0)
    assert demo.startswith("# DEMO: Table I: AG cluster overlap across corpora\n")
    assert table1_markdown(table, ("crema_d", "msp_improv"), 25.0).startswith("# Table I:")


def test_table2_figure_names_demo_colours_and_chance() -> None:
    fig = plot_table2(_t2("demo_crema", "demo_improv"))
    assert fig.axes[0].get_title() == "DEMO: Table II (this pipeline)"
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["demo_crema→demo_improv", "demo_improv→demo_improv", "chance (25 %)"]
    assert fig.get_figwidth() == PAGE_WIDTH
    real = plot_table2(_t2("crema_d", "msp_improv"))
    assert real.axes[0].get_title() == "Table II (this pipeline)"


def test_fig1_has_one_legend_for_the_figure() -> None:
    rng = np.random.default_rng(0)
    members = {c: [rng.normal(size=(8, 24)) for _ in range(3)] for c in ("demo_a", "demo_b")}
    panels = [("AA", 0, rng.normal(size=(6, 24)), members), ("IY", 1, np.zeros((6, 24)), members)]
    fig = plot_fig1(panels)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == [
        "demo_a members: mean ± 1 std",
        "demo_b members: mean ± 1 std",
        "cluster centroid",
    ]
    assert fig.get_suptitle().startswith("DEMO: ") and fig.get_figwidth() == PAGE_WIDTH


def test_confusion_title_says_demo_when_it_names_a_demo_corpus() -> None:
    cm = np.array([[3, 1], [0, 4]])
    demo = plot_confusion(cm, ["a", "b"], "ag_cc:demo_crema->demo_improv:seed1 on demo_improv")
    assert demo.axes[0].get_title().startswith("DEMO: ag_cc:demo_crema")
    real = plot_confusion(cm, ["a", "b"], "ag_cc:crema_d->msp_improv:seed1 on msp_improv")
    assert not real.axes[0].get_title().startswith("DEMO")
