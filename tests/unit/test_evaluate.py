"""Table II metrics by hand: UAR, one-vs-rest UAR, the paired bootstrap, the table layout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agcc.errors import ConfigError, DataError
from agcc.io.predictions import load_runs
from agcc.params import EMOTIONS, BaseParams, EvaluateParams
from agcc.stages.evaluate import run
from agcc.stats import (
    binary_uar,
    bootstrap_uar,
    confusion_matrix,
    hierarchical_paired_bootstrap,
    uar,
)
from agcc.tables import PAPER_TABLE2, binary_column, derived_column, table2, table2_markdown

Y = np.array([0, 0, 0, 1, 1, 2])
P = np.array([0, 0, 1, 1, 0, 2])


def test_uar_by_hand() -> None:
    # recalls: class 0 2/3, class 1 1/2, class 2 1/1
    assert uar(Y, P, 4) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_uar_leaves_out_classes_absent_from_the_truth() -> None:
    # class 2 is predicted but never true: recalls 1/2 (class 0) and 1 (class 1)
    assert uar(np.array([0, 0, 1]), np.array([0, 2, 1]), 3) == pytest.approx(0.75)
    assert math.isnan(uar(np.array([], dtype=int), np.array([], dtype=int), 3))


def test_confusion_matrix_rows_are_truth() -> None:
    cm = confusion_matrix(Y, P, 3)
    assert cm.tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match="got 5"):
        confusion_matrix(np.array([0]), np.array([5]), 3)


def test_binary_uar_by_hand() -> None:
    # neutral (0) vs rest: truth 1 1 1 0 0 0, predicted 1 1 0 0 1 0 -> TPR 2/3, TNR 2/3
    assert binary_uar(Y, P, 0) == pytest.approx(2 / 3)
    # class 1: truth 0 0 0 1 1 0, predicted 0 0 1 1 0 0 -> TPR 1/2, TNR 3/4
    assert binary_uar(Y, P, 1) == pytest.approx((1 / 2 + 3 / 4) / 2)
    assert binary_uar(Y, P, 2) == 1.0


def test_bootstrap_uar_matches_the_direct_uar() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 50)
    preds = np.stack([np.where(rng.random(50) < 0.6, y, rng.integers(0, 4, 50)) for _ in range(3)])
    idx = rng.integers(0, 50, (20, 50))
    got = bootstrap_uar(y, preds, idx, 4)  # (3, 20)
    want = [[uar(y[i], p[i], 4) for i in idx] for p in preds]
    assert got == pytest.approx(np.array(want))
    identity = bootstrap_uar(y, preds, np.arange(50)[None, :], 4)[:, 0]
    assert identity == pytest.approx([uar(y, p, 4) for p in preds])


def _noisy(y: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Predictions right with probability ``accuracy``, else a uniformly random wrong class."""
    wrong = (y + rng.integers(1, 4, len(y))) % 4
    return np.where(rng.random(len(y)) < accuracy, y, wrong)


def test_bootstrap_ci_contains_the_true_difference() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 150)  # balanced: UAR = accuracy in expectation
    a = np.stack([_noisy(y, 0.75, rng) for _ in range(2)])
    b = np.stack([_noisy(y, 0.55, rng) for _ in range(2)])
    res = hierarchical_paired_bootstrap(y, a, b, 500, 0.95, np.random.default_rng(0), 4)
    diff, lo, hi = res.diff, res.low, res.high
    assert lo < 0.20 < hi  # the population difference
    assert lo < diff < hi and lo > 0.0  # the observed one, and the gain is significant
    assert hi - lo < 0.2 and res.p < 0.01 and not res.meaningful  # 2 seeds: flagged


def test_bootstrap_of_identical_predictions_is_zero() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 80)
    a = _noisy(y, 0.6, rng)[None, :]
    res = hierarchical_paired_bootstrap(y, a, a, 100, 0.95, rng, 4)
    assert (res.diff, res.low, res.high, res.p) == (0.0, 0.0, 0.0, 1.0)


def _scores() -> pd.DataFrame:
    """Per-run scores of two methods in one direction and an upper bound, two seeds each."""
    rows = []
    for method, base in (("ag_cc", 0.5), ("pa_cc", 0.4), ("upper_bound", 0.7)):
        for seed, delta in ((1, 0.0), (2, 0.1)):
            rows.append(
                {
                    "direction": "c_to_i",
                    "source": "c",
                    "target": "i",
                    "method": method,
                    "oracle": False,
                    "seed": seed,
                    "uar_4cat": base + delta,
                }
                | {derived_column(e): base + delta + 0.2 for e in EMOTIONS}
                | {binary_column(e): base + delta + 0.3 for e in EMOTIONS}
            )
    return pd.DataFrame(rows)


def test_table2_means_stds_and_paper_row_order() -> None:
    t2 = table2(_scores(), EMOTIONS)
    assert t2["method"].tolist() == ["upper_bound", "pa_cc", "ag_cc"]
    ag = t2.set_index("method").loc["ag_cc"]
    assert ag["uar_4cat_mean"] == pytest.approx(55.0)
    assert ag["uar_4cat_std"] == pytest.approx(100 * 0.1 / math.sqrt(2), abs=0.01)
    assert ag["neutral_derived_mean"] == pytest.approx(75.0) and ag["seeds"] == "1 2"
    assert ag["neutral_binary_mean"] == pytest.approx(85.0)
    ub = t2.set_index("method").loc["upper_bound"]
    assert ub["direction_label"] == "i→i" and ub["method_label"] == "Upper Bound"


def test_markdown_keeps_the_paper_numbers_in_their_own_block() -> None:
    t2 = table2(_scores(), EMOTIONS)
    cis = pd.DataFrame(
        [
            {
                "direction": "c_to_i",
                "ag_cc": "ag_cc",
                "baseline": "pa_cc",
                "diff": 10.0,
                "ci_low": 2.0,
                "ci_high": 18.0,
                "p": 0.004,
                "p_holm": 0.012,
                "n_seeds": 2,
                "ci_flag": "not meaningful (< 3 seeds)",
                "n_test": 80,
            }
        ]
    )
    md = table2_markdown(t2, cis, EMOTIONS, EvaluateParams())
    ours, paper = md.split("Reference only")
    assert "55.00 ± 7.07" in ours
    row = "AG-CC − PA-CC | +10.00 | [+2.00, +18.00] | 0.012 | 2 | 80 | not meaningful (< 3 seeds)"
    assert row in ours and "over seeds and test utterances" in ours and "Holm-adjusted" in ours
    assert all(f"{row[2]:.2f}" not in ours for row in PAPER_TABLE2)
    assert all(f"{row[2]:.2f}" in paper for row in PAPER_TABLE2)
    assert "derived from the 4-class model" in ours and "dedicated one-vs-rest model" in ours
    header = next(line for line in ours.splitlines() if line.startswith("| Method"))
    assert "Neu (bin)" in header and "Sad (der)" in header
    assert header.index("Sad (bin)") < header.index("Neu (der)")
    assert "65.00 ± 7.07" in ours  # a binary model's cell: 0.5 + 0.3 (+ 0.1), in percent
    assert "none was tuned" in ours


def test_tuned_rows_are_marked_and_unequal_tuning_is_said() -> None:
    t2 = table2(_scores(), EMOTIONS, tuned=("ag_cc",))
    assert t2.set_index("method").loc["ag_cc", "method_label"] == "AG-CC (tuned)"
    assert not t2.set_index("method").loc["pa_cc", "tuned"]
    cis = pd.DataFrame(columns=["direction"])
    md = table2_markdown(t2, cis, EMOTIONS, EvaluateParams(tuned=("ag_cc",)))
    assert "AG-CC (tuned)" in md and "**Unequal tuning**: PA-CC" in md
    fair = table2_markdown(
        table2(_scores(), EMOTIONS, ("ag_cc", "pa_cc")),
        cis,
        EMOTIONS,
        EvaluateParams(tuned=("ag_cc", "pa_cc")),
    )
    assert "Unequal tuning" not in fair and "PA-CC (tuned)" in fair


def test_tuned_must_name_table2_methods(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"evaluate.tuned lists \['la_cc'\]"):
        run(tmp_path, ("ag_cc",), EvaluateParams(tuned=("la_cc",)), BaseParams(), tmp_path / "out")


def test_missing_runs_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ag_cc/runs\.csv: no such file.*train@ag_cc"):
        load_runs(tmp_path, ("ag_cc", "upper_bound"))
    with pytest.raises(FileNotFoundError, match=r"source_only/runs\.csv: no such file"):
        load_runs(tmp_path, ("upper_bound",))  # upper bounds are source_only's models


def test_a_failed_run_is_an_error_not_left_out(tmp_path: Path) -> None:
    folder = tmp_path / "ag_cc"
    folder.mkdir()
    row = {"direction": "a_to_b", "source": "a", "target": "b", "method": "ag_cc"}
    rows = [
        row | {"oracle": False, "seed": s, "status": st, "predictions": p}
        for s, st, p in ((1, "FINISHED", "runs/a_to_b/seed1/predictions_b.csv"), (2, "FAILED", ""))
    ]
    pd.DataFrame(rows).to_csv(folder / "runs.csv", index=False)
    with pytest.raises(DataError, match=r"1 run\(s\) did not finish.*a_to_b seed 2.*train@ag_cc"):
        load_runs(tmp_path, ("ag_cc",))
