"""Speaker-independent splits: allocation by largest remainder, determinism, no group in two."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agcc.corpora.splits import allocate, assign_splits, check_independent
from agcc.errors import DataError
from agcc.params import PrepareParams

FRACTIONS = PrepareParams().split_fractions  # train 0.6, val 0.15, dev 0.1, test 0.15


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (4, {"train": 1, "val": 1, "dev": 1, "test": 1}),
        (8, {"train": 5, "val": 1, "dev": 1, "test": 1}),  # 4.8 vs 0.8: float noise must not win
        (5, {"train": 2, "val": 1, "dev": 1, "test": 1}),  # empty dev takes one from train
        (6, {"train": 3, "val": 1, "dev": 1, "test": 1}),  # quotas 3.6 .9 .6 .9
        (20, {"train": 12, "val": 3, "dev": 2, "test": 3}),
        (91, {"train": 54, "val": 14, "dev": 9, "test": 14}),  # remainders .6 .65 .1 .65
    ],
)
def test_allocate_largest_remainder(n: int, expected: dict[str, int]) -> None:
    assert allocate(n, FRACTIONS) == expected


def test_too_few_groups_is_an_error_naming_the_counts() -> None:
    with pytest.raises(ValueError, match=r"at least 4 distinct groups .* got 3"):
        assign_splits(["a", "b", "c", "a"], FRACTIONS, seed=1)
    with pytest.raises(ValueError, match="got 0"):
        assign_splits([], FRACTIONS, seed=1)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=4, max_value=120), seed=st.integers(0, 2**31))
def test_every_group_in_one_split_and_every_split_non_empty(n: int, seed: int) -> None:
    groups = [f"spk{i:03d}" for i in range(n)] * 3  # each group has several utterances
    split_of = assign_splits(groups, FRACTIONS, seed)
    assert set(split_of) == set(groups)
    sizes = Counter(split_of.values())
    assert set(sizes) == set(FRACTIONS)
    assert sizes == Counter(allocate(n, FRACTIONS))
    tol = 1.0 if n >= 6 else 1.5  # below 6 groups the at-least-one rule dominates
    for split, f in FRACTIONS.items():
        assert abs(sizes[split] - f * n) <= tol  # fractions honoured to within one group


def test_same_seed_same_splits_other_seed_different() -> None:
    groups = [f"{1001 + i}" for i in range(40)]
    a = assign_splits(groups, FRACTIONS, seed=13)
    assert assign_splits(list(reversed(groups)), FRACTIONS, seed=13) == a  # order-independent
    assert assign_splits(groups, FRACTIONS, seed=14) != a


def test_custom_fractions_and_split_names_follow_the_mapping() -> None:
    split_of = assign_splits([str(i) for i in range(10)], {"a": 0.5, "b": 0.5}, seed=0)
    assert Counter(split_of.values()) == {"a": 5, "b": 5}


def test_a_pilot_of_two_or_three_groups_fills_splits_in_order_most_video_first() -> None:
    order = ("val", "train", "test", "dev")
    rank = {"1001": 80, "1002": 0}
    assert assign_splits(["1002", "1001", "1002"], FRACTIONS, 13, order, rank) == {
        "1001": "val",  # the speaker with the most video goes to the AG cluster's fit split
        "1002": "train",
    }
    three = assign_splits(["a", "b", "c"], FRACTIONS, 13, order, {"c": 5})
    assert three == {"c": "val", "a": "train", "b": "test"}
    with pytest.raises(ValueError, match=r"got 1: \['a'\] \(a pilot needs at least 2"):
        assign_splits(["a", "a"], FRACTIONS, 13, order)


def test_prepared_splits_shared_by_a_speaker_are_an_error_naming_it() -> None:
    frame = pd.DataFrame(
        {"speaker": ["s1", "s1", "s2", "s3"], "split": ["train", "test", "val", "val"]}
    )
    with pytest.raises(
        DataError, match=r"m\.csv: splits are not speaker-independent: 1 .*s1 in test, train"
    ):
        check_independent(frame, "speaker", "m.csv")
    check_independent(frame.iloc[1:], "speaker", "m.csv")  # no shared speaker: no error
