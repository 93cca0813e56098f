"""AG clustering helpers: elbow, input checks, fit subset, assignment and model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agcc.clustering import elbow_k, fit_indices, silhouette, sweep_ks
from agcc.io.cluster_model import (
    ASSIGNMENT_COLUMNS,
    AGModel,
    load_model,
    save_model,
    write_assignments,
)
from agcc.io.segments import SEGMENT_COLUMNS, check_segments, load_corpora, save_segments
from agcc.params import ClusterParams
from agcc.sdtw import assign, pairwise_divergence


def _table(corpus: str, splits: list[str]) -> pd.DataFrame:
    """A minimal segments table, one row per split entry."""
    n = len(splits)
    rows = {c: [""] * n for c in SEGMENT_COLUMNS}
    rows |= {
        "seg_id": [f"{corpus}_u{i}#0" for i in range(n)],
        "corpus": [corpus] * n,
        "split": splits,
        "emotion": ["anger"] * n,
        "vowel": ["AA", "IY"] * (n // 2) + ["AA"] * (n % 2),
    }
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def _ramp(level: float, n: int = 5, d: int = 2) -> np.ndarray:
    """A (n, d) series rising from ``level`` to ``level + 1``."""
    return (level + np.linspace(0, 1, n)[:, None] * np.ones(d)).astype(np.float32)


# --- elbow ---------------------------------------------------------------------------------


def test_elbow_finds_the_knee_of_a_piecewise_linear_curve() -> None:
    ks = np.arange(2, 12)
    inertia = [100, 70, 40, 10, 9, 8, 7, 6, 5, 4]  # steep until k=5, then flat
    assert elbow_k(ks, inertia) == 5


def test_elbow_ignores_units_and_order() -> None:
    ks = np.arange(2, 12)
    inertia = np.array([100, 70, 40, 10, 9, 8, 7, 6, 5, 4], dtype=float)
    order = np.random.default_rng(0).permutation(len(ks))
    assert elbow_k(ks[order], 1e6 * inertia[order] + 3e7) == 5


def test_elbow_of_a_convex_decay_by_hand() -> None:
    # k = 1, 2, 3 scaled to 0, .5, 1; inertia 1, .2, 0 -> distances to the chord y = 1 - x:
    # point 2 is |.5 + .2 - 1| / sqrt 2 = .21, the ends 0.
    assert elbow_k([1, 2, 3], [1.0, 0.2, 0.0]) == 2


def test_elbow_flat_curve_gives_smallest_k() -> None:
    assert elbow_k([5, 10, 15], [3.0, 3.0, 3.0]) == 5


@pytest.mark.parametrize(
    ("ks", "inertia", "match"),
    [([2, 3], [1.0, 0.5], ">= 3"), ([2, 3, 4], [1.0, np.nan, 0.2], "finite")],
)
def test_elbow_bad_input(ks: list[int], inertia: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        elbow_k(ks, inertia)


# --- input checks --------------------------------------------------------------------------


def test_nan_segment_is_an_error_naming_it(tmp_path: Path) -> None:
    frames = [_ramp(0), _ramp(1)]
    frames[1][2, 0] = np.nan
    with pytest.raises(ValueError, match=r"seg.*'c_u1#0'.*NaN"):
        check_segments(_table("c", ["val", "val"]), frames, tmp_path / "seg")


@pytest.mark.parametrize("n_frames", [0, 1])
def test_too_short_segment_is_an_error(tmp_path: Path, n_frames: int) -> None:
    frames = [_ramp(0), np.zeros((n_frames, 2), np.float32)]
    with pytest.raises(ValueError, match=rf"'c_u1#0' has {n_frames} frame"):
        check_segments(_table("c", ["val", "val"]), frames, tmp_path)


def test_empty_corpus_is_an_error(tmp_path: Path) -> None:
    save_segments(_table("c", []), [], tmp_path / "c")
    with pytest.raises(ValueError, match="empty corpus"):
        load_corpora([tmp_path / "c"])


def test_same_corpus_twice_is_an_error(tmp_path: Path) -> None:
    save_segments(_table("c", ["val", "val"]), [_ramp(0), _ramp(1)], tmp_path / "c")
    with pytest.raises(ValueError, match="distinct corpus"):
        load_corpora([tmp_path / "c", tmp_path / "c"])


def test_load_corpora_concatenates_in_order(tmp_path: Path) -> None:
    save_segments(_table("a", ["val", "test"]), [_ramp(0), _ramp(1, n=3)], tmp_path / "a")
    save_segments(_table("b", ["val"]), [_ramp(2, n=4)], tmp_path / "b")
    table, series = load_corpora([tmp_path / "a", tmp_path / "b"])
    assert list(table["corpus"]) == ["a", "a", "b"]
    assert [len(s) for s in series] == [5, 3, 4]


# --- fit subset and k ----------------------------------------------------------------------


def test_fit_indices_take_the_fit_split_of_every_corpus() -> None:
    table = pd.concat([_table("a", ["train", "val", "val"]), _table("b", ["val", "test"])])
    idx = fit_indices(table.reset_index(drop=True), ClusterParams(), seed=0)
    assert list(idx) == [1, 2, 3]


def test_fit_indices_subsample_is_seeded_and_sized() -> None:
    table = pd.concat([_table("a", ["val"] * 30), _table("b", ["val"] * 30)])
    table = table.reset_index(drop=True)
    cp = ClusterParams(max_fit_segments=20)
    first, again = fit_indices(table, cp, seed=1), fit_indices(table, cp, seed=1)
    assert len(first) == 20 and len(set(first)) == 20
    assert (first == again).all()
    assert not (first == fit_indices(table, cp, seed=2)).all()


def test_corpus_without_fit_segments_is_an_error() -> None:
    table = pd.concat([_table("a", ["val"]), _table("b", ["train", "test"])])
    with pytest.raises(ValueError, match="corpus 'b' has no 'val' segments"):
        fit_indices(table.reset_index(drop=True), ClusterParams(), seed=0)


def test_k_larger_than_fit_set_is_an_error() -> None:
    cp = ClusterParams(k=None, k_grid=(2, 3, 8))
    with pytest.raises(ValueError, match=r"k values \[8\] exceed the 5 fit segments"):
        sweep_ks(cp, n_fit=5)


def test_sweep_adds_k_to_the_grid() -> None:
    assert sweep_ks(ClusterParams(k=12, k_grid=(2, 4, 6)), n_fit=50) == [2, 4, 6, 12]
    assert sweep_ks(ClusterParams(k=None, k_grid=(2, 4, 6)), n_fit=50) == [2, 4, 6]


# --- assignment, divergences, files --------------------------------------------------------


def test_assignments_cover_every_segment(tmp_path: Path) -> None:
    series = [_ramp(0, n=4), _ramp(10, n=6), _ramp(0.1, n=5), _ramp(9.8, n=3), _ramp(-0.2)]
    centroids = np.stack([_ramp(10), _ramp(0)]).astype(np.float64)  # (2, 5, 2)
    labels = assign(series, centroids, gamma=0.1, device="cpu")
    assert list(labels) == [1, 0, 1, 0, 1]
    table = _table("c", ["val", "test", "train", "dev", "val"])
    out = write_assignments(table, labels, tmp_path / "assignments.csv")
    back = pd.read_csv(tmp_path / "assignments.csv")
    assert list(back.columns) == ASSIGNMENT_COLUMNS
    assert list(back["seg_id"]) == list(table["seg_id"]) and len(out) == len(series)
    assert list(back["cluster"]) == [1, 0, 1, 0, 1]


def test_assign_ignores_nan_padding_of_centroids() -> None:
    short = np.full((2, 5, 2), np.nan)
    short[0, :3], short[1, :3] = _ramp(0, n=3), _ramp(5, n=3)
    assert list(assign([_ramp(5, n=3), _ramp(0, n=3)], short, 0.1, "cpu")) == [1, 0]


def test_pairwise_divergence_is_a_distance_matrix() -> None:
    series = [_ramp(0), _ramp(0.5, n=4), _ramp(3, n=6)]
    div = pairwise_divergence(series, gamma=0.1, device="cpu")
    assert div.shape == (3, 3)
    assert np.allclose(div, div.T) and np.allclose(np.diag(div), 0) and (div >= 0).all()
    assert 0 < div[0, 1] < div[0, 2]  # farther series, larger divergence


def test_silhouette_nan_with_one_label_and_high_for_clear_groups() -> None:
    div = np.array([[0, 1, 9, 9], [1, 0, 9, 9], [9, 9, 0, 1], [9, 9, 1, 0]], dtype=float)
    assert np.isnan(silhouette(div, np.zeros(4, int)))
    assert silhouette(div, np.array([0, 0, 1, 1])) == pytest.approx(8 / 9)


def test_model_round_trip(tmp_path: Path) -> None:
    model = AGModel(np.ones((3, 4, 2)), np.eye(3), 0.5, "tslearn", 1.25, 7, 2.0)
    back = load_model(save_model(tmp_path / "m" / "k03.npz", model))
    assert back.k == 3 and back.engine == "tslearn" and back.n_iter == 7
    assert back.gamma == 0.5 and back.inertia == 1.25
    assert np.array_equal(back.centroids, model.centroids)
    with pytest.raises(FileNotFoundError, match="run the cluster stage"):
        load_model(tmp_path / "missing.npz")
