"""Table I overlap measures, Eq. 1, Table I layout and Fig. 1 helpers, against hand values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agcc.figures.fig1 import member_band
from agcc.io.cluster_model import read_assignments
from agcc.overlap import (
    IPA,
    average_overlap,
    cluster_shares,
    common_clusters,
    eq1_similarity,
    overlap,
    pick_fig1_clusters,
)
from agcc.sdtw import resample
from agcc.tables import table1, table1_markdown, table1_metrics

EMOTIONS = ("neutral", "anger", "happiness", "sadness")


def _frame(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """Assignments (corpus, vowel, emotion, cluster)."""
    return pd.DataFrame(rows, columns=["corpus", "vowel", "emotion", "cluster"])


# --- the pure measures ---------------------------------------------------------------------


def test_cluster_shares_by_hand() -> None:
    p = cluster_shares(np.array([[2, 2, 0], [1, 2, 1], [0, 0, 0]]))
    assert np.allclose(p, [[0.5, 0.5, 0], [0.25, 0.5, 0.25], [0, 0, 0]])


def test_cluster_shares_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        cluster_shares(np.array([[1, -1]]))


def test_overlap_by_hand() -> None:
    o = overlap(np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.5, 0.25]))
    assert np.allclose(o, [50.0, 100.0, 0.0])
    assert np.allclose(overlap(np.zeros(2), np.zeros(2)), [0.0, 0.0])


def test_average_overlap_by_hand() -> None:
    o = np.array([50.0, 100.0, 0.0])
    assert average_overlap(o, 25.0) == pytest.approx(75.0)
    assert average_overlap(o, 60.0) == pytest.approx(100.0)
    assert math.isnan(average_overlap(np.array([10.0, 0.0]), 25.0))
    # threshold 0 still needs both corpora in the cluster
    assert average_overlap(o, 0.0) == pytest.approx(75.0)
    assert list(common_clusters(o, 0.0)) == [True, True, False]


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ([75.3, 70.4, 61.2, 0, 0, 0, 68.4, 7.1, 0, 0], 68.8),  # paper Table I, /a/, All
        ([71.1, 79.9, 0, 69.3, 5.7, 0, 2.5, 0, 0, 0], 73.4),  # /i/, All
    ],
)
def test_average_overlap_reproduces_the_paper(column: list[float], expected: float) -> None:
    assert round(average_overlap(np.array(column), 25.0), 1) == expected


def test_eq1_by_hand() -> None:
    p1, p2 = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.5, 0.25])
    mask = common_clusters(overlap(p1, p2), 25.0)  # clusters 1 and 2
    assert eq1_similarity(p1, p2, mask) == pytest.approx(100 / 2 * (0.25 + 0.5))  # 37.5
    assert math.isnan(eq1_similarity(p1, p2, np.zeros(3, bool)))
    with pytest.raises(ValueError, match="shapes differ"):
        eq1_similarity(p1, p2[:2], mask)


# --- Table I -------------------------------------------------------------------------------


def _aa_frame() -> pd.DataFrame:
    """AA only: corpus a in clusters 0,0,1,1, corpus b in 0,1,1,2, all neutral, k = 3."""
    rows = [("a", "AA", "neutral", c) for c in (0, 0, 1, 1)]
    rows += [("b", "AA", "neutral", c) for c in (0, 1, 1, 2)]
    return _frame(rows)


def test_table1_values_and_layout() -> None:
    t = table1(_aa_frame(), ("a", "b"), k=3, emotions=EMOTIONS, threshold=25.0)
    assert list(t.columns) == ["section", "row", *IPA.values()]
    assert len(t) == 3 + 5 + 5
    rows = list(t["row"])
    assert rows[:3] == ["Cluster_1", "Cluster_2", "Cluster_3"]
    assert rows[3:8] == ["All", "Neutral", "Happiness", "Anger", "Sadness"]  # paper order
    top = t[t["section"] == "overlap"]
    assert np.allclose(top["/a/"], [50, 100, 0]) and (top["/i/"] == 0).all()
    avg = t[t["section"] == "average"].set_index("row")
    eq1 = t[t["section"] == "eq1"].set_index("row")
    assert avg.loc["All", "/a/"] == pytest.approx(75.0) == avg.loc["Neutral", "/a/"]
    assert eq1.loc["All", "/a/"] == pytest.approx(37.5)
    assert math.isnan(avg.loc["Anger", "/a/"])  # no angry segment in either corpus
    assert avg["/u/"].isna().all()  # no /u/ at all


def test_table1_corpus_order_does_not_change_overlaps() -> None:
    ab = table1(_aa_frame(), ("a", "b"), 3, EMOTIONS, 25.0)
    ba = table1(_aa_frame(), ("b", "a"), 3, EMOTIONS, 25.0)
    pd.testing.assert_frame_equal(ab, ba)


def test_table1_markdown_and_metrics() -> None:
    t = table1(_aa_frame(), ("a", "b"), 3, ("neutral", "anger"), 25.0)
    md = table1_markdown(t, ("a", "b"), 25.0)
    assert "| AG Cluster | /a/ | /ə/ | /ɛ/ | /i/ | /æ/ | /u/ |" in md
    assert "| Cluster_2 | 100.0 | 0.0 |" in md
    assert "| All | 75.0 | - |" in md and "**Eq. 1 Sim**" in md
    assert "Happiness" not in md  # only the configured emotions
    m = table1_metrics(t)
    assert m["avg_overlap.all.AA"] == 75.0 and m["eq1_sim.all.AA"] == 37.5
    assert m["avg_overlap.all.mean"] == 75.0  # NaN vowels left out
    assert "avg_overlap.anger.AA" not in m and all(np.isfinite(list(m.values())))


# --- Fig. 1 --------------------------------------------------------------------------------


def test_pick_fig1_takes_most_populous_common_clusters_distinct() -> None:
    rows = [("a", "AA", "neutral", c) for c in (0, 1, 1, 1, 2)]
    rows += [("b", "AA", "neutral", c) for c in (0, 1, 1, 1, 1, 1, 2)]
    rows += [("a", "IY", "neutral", c) for c in (1, 1, 2, 2, 3)]  # 1 largest, but taken
    rows += [("b", "IY", "neutral", c) for c in (1, 1, 2, 2)]  # cluster 3: corpus a only
    assert pick_fig1_clusters(_frame(rows), ("a", "b"), ("AA", "IY"), 4, 25.0) == (1, 2)


def test_pick_fig1_falls_back_to_shared_then_any_cluster() -> None:
    # AA: p_a = [2/22, 0, 20/22, 0], p_b = [1, 0, 0, 0]: o = [9.1, 0, 0, 0], nothing common;
    # cluster 0 is shared, cluster 2 is bigger but corpus a only.
    rows = [("a", "AA", "neutral", 0)] * 2 + [("b", "AA", "neutral", 0)]
    rows += [("a", "AA", "neutral", 2)] * 20
    rows += [("a", "IY", "neutral", 0), ("b", "IY", "neutral", 0), ("a", "IY", "neutral", 3)]
    assert pick_fig1_clusters(_frame(rows), ("a", "b"), ("AA", "IY"), 4, 25.0) == (0, 3)


def test_pick_fig1_errors_when_a_vowel_has_no_other_cluster() -> None:
    rows = [("a", "AA", "neutral", 0), ("b", "AA", "neutral", 0), ("a", "IY", "neutral", 0)]
    with pytest.raises(ValueError, match="'IY' has no segments in a cluster other than"):
        pick_fig1_clusters(_frame(rows), ("a", "b"), ("AA", "IY"), 2, 25.0)


def test_resample_by_hand() -> None:
    x = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0]])
    assert np.allclose(resample(x, 5), [[0, 10], [0.5, 15], [1, 20], [1.5, 25], [2, 30]])
    assert np.allclose(resample(x[:1], 3), [[0, 10]] * 3)


def test_member_band_by_hand() -> None:
    mean, std = member_band([np.zeros((2, 1)), np.full((4, 1), 2.0)], 3)
    assert np.allclose(mean, 1.0) and np.allclose(std, 1.0)


def test_read_assignments_needs_every_segment(tmp_path: Path) -> None:
    table = pd.DataFrame({"seg_id": ["u1#0", "u2#0"], "corpus": ["a", "a"]})
    pd.DataFrame({"seg_id": ["u1#0"], "corpus": ["a"], "cluster": [1]}).to_csv(
        tmp_path / "assignments.csv", index=False
    )
    with pytest.raises(ValueError, match=r"no cluster for 1 segments \(e.g. 'u2#0'\)"):
        read_assignments(tmp_path, table, k=3)
    pd.DataFrame({"seg_id": ["u1#0", "u2#0"], "corpus": ["a", "a"], "cluster": [1, 3]}).to_csv(
        tmp_path / "assignments.csv", index=False
    )
    with pytest.raises(ValueError, match=r"0\.\.2, got 3"):
        read_assignments(tmp_path, table, k=3)


def test_association_tables_groups_rows_and_metrics() -> None:
    from agcc.acoustic import association_metrics, association_tables

    kept = pd.DataFrame(
        {
            "emotion": ["anger", "neutral", "anger", "neutral"],
            "cluster": [0, 1, 0, 1],
            "acoustic": [2, 0, 2, 1],
        }
    )
    tables, stats, csv = association_tables(kept, 2, 3, ("anger", "neutral", "sadness"), seed=0)
    assert list(tables) == ["all", "neutral", "anger", "sadness"]  # the paper's emotion order
    assert tables["all"].tolist() == [[0, 0, 2], [1, 1, 0]]
    assert len(csv) == 4 * 2 * 3 and csv["count"].sum() == 2 * len(kept)
    assert stats["anger"]["max_row_share"] == 1.0 and math.isnan(stats["sadness"]["nmi"])
    metrics = association_metrics(stats, 3, len(kept))
    assert metrics["fig2.k"] == 3 and metrics["fig2.n_segments"] == 4
    assert metrics["fig2.max_row_share.anger"] == 1.0 and "fig2.nmi.sadness" not in metrics


@pytest.mark.parametrize("stage", ["cluster", "analyze", "evaluate"])
def test_stages_import_no_other_stage(stage: str) -> None:
    import ast
    import importlib.util

    spec = importlib.util.find_spec(f"agcc.stages.{stage}")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith("agcc.stages") for m in modules)
