"""agcc.stats against scikit-learn and hand-checkable cases: UAR, the two-level bootstrap, Holm."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import recall_score

from agcc.errors import DataError
from agcc.params import EvaluateParams
from agcc.stats import (
    bootstrap_p_value,
    confusion_matrix,
    draw_counts,
    hierarchical_paired_bootstrap,
    holm,
    uar,
)
from agcc.tables import CI_FLAG, bootstrap_cis, check_seed_sets, table2_metrics


def _hand_uar(y: np.ndarray, p: np.ndarray, n_classes: int) -> float:
    """The former hand-written UAR: mean recall over the classes present in y."""
    flat = np.bincount(y * n_classes + p, minlength=n_classes**2).reshape(n_classes, n_classes)
    support = flat.sum(axis=1)
    return float((np.diag(flat)[support > 0] / support[support > 0]).mean())


def _noisy(y: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Predictions right with probability ``accuracy``, else a uniformly random wrong class."""
    wrong = (y + rng.integers(1, 4, len(y))) % 4
    return np.where(rng.random(len(y)) < accuracy, y, wrong)


@pytest.mark.parametrize("seed", range(5))
def test_uar_equals_sklearn_and_the_former_rule_on_random_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 40)  # class 3 never true (but predicted): left out of the mean
    p = rng.integers(0, 4, 40)
    want = recall_score(y, p, labels=[0, 1, 2], average="macro", zero_division=0)
    assert uar(y, p, 4) == pytest.approx(_hand_uar(y, p, 4)) == pytest.approx(want)
    assert confusion_matrix(y, p, 4).tolist() == sk_confusion_matrix(y, p, labels=range(4)).tolist()
    assert math.isnan(uar(np.array([], dtype=int), np.array([], dtype=int), 4))


def test_draw_counts_count_each_draw() -> None:
    assert draw_counts(np.array([[0, 0, 2], [1, 2, 2]]), 3).tolist() == [[2, 0, 1], [0, 1, 2]]


def test_a_wide_seed_spread_widens_the_ci() -> None:
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 100)
    good, bad = _noisy(y, 0.75, rng), _noisy(y, 0.35, rng)
    base = np.stack([_noisy(y, 0.55, rng)] * 2)
    spread = hierarchical_paired_bootstrap(
        y, np.stack([good, bad]), base, 400, 0.95, np.random.default_rng(0), 4
    )
    repeated = hierarchical_paired_bootstrap(
        y, np.stack([good, good]), base, 400, 0.95, np.random.default_rng(0), 4
    )
    assert spread.high - spread.low > 2 * (repeated.high - repeated.low)
    assert spread.low < 0.0 < spread.high and repeated.low > 0.0  # the spread kills the gain
    assert spread.n_seeds == 2 and not spread.meaningful


def test_the_bootstrap_is_reproducible_from_its_seed() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, 60)
    a, b = (np.stack([_noisy(y, acc, rng) for _ in range(3)]) for acc in (0.6, 0.5))
    runs = [hierarchical_paired_bootstrap(y, a, b, 50, 0.9, np.random.default_rng(7), 4)]
    runs.append(hierarchical_paired_bootstrap(y, a, b, 50, 0.9, np.random.default_rng(7), 4))
    assert runs[0] == runs[1] and runs[0].meaningful


def test_bootstrap_p_value_by_hand() -> None:
    assert bootstrap_p_value(np.zeros(9)) == 1.0
    assert bootstrap_p_value(np.array([1.0] * 9)) == pytest.approx(2 / 10)
    assert bootstrap_p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(2 * 2 / 5)


def test_holm_on_known_p_values() -> None:
    assert holm(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    assert holm(np.array([0.5, 0.01])) == pytest.approx([0.5, 0.02])
    assert holm(np.array([0.6, 0.7])) == pytest.approx([1.0, 1.0])  # capped at 1
    with pytest.raises(ValueError, match="must lie in"):
        holm(np.array([0.1, math.nan]))


def _preds(seeds: dict[str, list[int]], n: int = 60) -> dict:
    """Predictions of each method in one direction for the given seeds."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, n)
    return {
        ("a_to_b", m): (y, np.stack([_noisy(y, 0.6, rng) for _ in s]), np.array(s))
        for m, s in seeds.items()
    }


def test_fewer_than_three_seeds_are_flagged_and_p_is_holm_adjusted() -> None:
    ep = EvaluateParams(bootstrap=50)
    few = bootstrap_cis(_preds({"ag_cc": [1, 2], "pa_cc": [1, 2], "la_cc": [1, 2]}), ep, 0, 4)
    assert few["ci_flag"].tolist() == [CI_FLAG] * 2 and few["n_seeds"].tolist() == [2, 2]
    assert (few["p_holm"] >= few["p"]).all() and few["p_holm"].max() <= 1.0
    enough = bootstrap_cis(_preds({"ag_cc": [1, 2, 3], "pa_cc": [1, 2, 3]}), ep, 0, 4)
    assert enough["ci_flag"].tolist() == [""] and enough["p_holm"].tolist() == enough["p"].tolist()
    metrics = table2_metrics(pd.DataFrame(columns=["direction"]), few, ())
    assert metrics["ci.a_to_b.ag_cc_minus_pa_cc.ci_meaningful"] == 0
    assert table2_metrics(pd.DataFrame(), enough, ())["ci.a_to_b.ag_cc_minus_pa_cc.n_seeds"] == 3


def test_differing_seed_sets_raise_naming_methods_direction_and_seeds() -> None:
    with pytest.raises(DataError, match=r"a_to_b: ag_cc has seeds \[1, 2\] but pa_cc has \[1\]"):
        bootstrap_cis(_preds({"ag_cc": [1, 2], "pa_cc": [1]}), EvaluateParams(bootstrap=10), 0, 4)
    scores = pd.DataFrame(
        [
            {"direction": d, "method": m, "oracle": False, "seed": s}
            for d in ("a_to_b", "b_to_a")
            for m in ("ag_cc", "pa_cc")
            for s in (1, 2, 3)
            if (d, m, s) != ("b_to_a", "pa_cc", 3)  # a failed run
        ]
    )
    with pytest.raises(DataError, match=r"seeds \[1, 2, 3\].*b_to_a pa_cc: seeds \[1, 2\]"):
        check_seed_sets(scores)
    check_seed_sets(scores[scores["seed"] != 3])  # the same seeds everywhere: fine
