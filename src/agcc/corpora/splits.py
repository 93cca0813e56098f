"""Speaker- (or session-) independent, seeded splits of a corpus, and the emotion filter."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from agcc.errors import DataError


def allocate(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Whole numbers of groups per split: largest-remainder rounding, then at least one each.

    With quotas ``q_s = f_s * n``, each split gets ``floor(q_s)`` groups and the groups left over
    go, one each, to the largest remainders ``q_s - floor(q_s)`` (ties in ``fractions`` order).
    A split left empty then takes one group from the split holding the most groups beyond its
    quota (among those with more than one).
    """
    k = len(fractions)
    if n < k:
        raise DataError(f"cannot split {n} groups into {k} non-empty splits {list(fractions)}")
    quota = {s: f * n for s, f in fractions.items()}
    counts = {s: math.floor(q) for s, q in quota.items()}
    # rounding the remainders keeps float noise (4.8 - 4 = 0.7999...) from breaking ties
    by_remainder = sorted(quota, key=lambda s: -round(quota[s] - counts[s], 9))
    for s in by_remainder[: n - sum(counts.values())]:
        counts[s] += 1
    for empty in [s for s in counts if counts[s] == 0]:
        donor = max((s for s in counts if counts[s] > 1), key=lambda s: counts[s] - quota[s])
        counts[donor] -= 1
        counts[empty] = 1
    return counts


def assign_splits(groups: Sequence[str], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Map each distinct group (speaker or session) to one split; no group spans two splits.

    The distinct groups are sorted, shuffled with ``numpy.random.default_rng(seed)`` and cut in the
    order of ``fractions`` into blocks sized by :func:`allocate`, so the result depends only on the
    set of groups, the fractions and the seed. Needs at least one group per split (and never fewer
    than 4 groups).
    """
    distinct = sorted(set(groups))
    need = max(4, len(fractions))
    if len(distinct) < need:
        raise DataError(
            f"speaker-independent splits need at least {need} distinct groups for "
            f"{len(fractions)} splits {list(fractions)}, got {len(distinct)}: {distinct}"
        )
    order = np.random.default_rng(seed).permutation(len(distinct))
    shuffled = [distinct[i] for i in order]
    out: dict[str, str] = {}
    start = 0
    for split, count in allocate(len(distinct), fractions).items():
        out |= dict.fromkeys(shuffled[start : start + count], split)
        start += count
    return out


def keep_emotions(
    frame: pd.DataFrame, dropped: Counter[str], emotions: tuple[str, ...]
) -> tuple[pd.DataFrame, Counter[str]]:
    """Rows whose emotion is in ``emotions``; the others are added to the dropped counts."""
    keep = frame["emotion"].isin(emotions)
    dropped = dropped + Counter(frame.loc[~keep, "emotion"].tolist())
    return frame.loc[keep].reset_index(drop=True), dropped


def add_splits(
    frame: pd.DataFrame, split_by: str, fractions: dict[str, float], seed: int
) -> pd.DataFrame:
    """Fill the ``split`` column so that each speaker (or session) lies in exactly one split."""
    empty = int((frame[split_by] == "").sum())
    if empty:
        raise DataError(
            f"{empty} of {len(frame)} utterances have an empty {split_by!r}; cannot split by "
            f"{split_by} (e.g. {frame.loc[frame[split_by] == '', 'utt_id'].iloc[0]!r})"
        )
    split_of = assign_splits(frame[split_by].tolist(), fractions, seed)
    return frame.assign(split=frame[split_by].map(split_of))


def split_table(frame: pd.DataFrame, split_by: str, order: list[str]) -> pd.DataFrame:
    """One row per group: group, split, n_utts (in split order, then group)."""
    table = frame.groupby(split_by, sort=True).agg(
        split=("split", "first"), n_utts=("utt_id", "size")
    )
    table = table.reset_index().rename(columns={split_by: "group"})
    rank = table["split"].map({s: i for i, s in enumerate(order)})
    return table.assign(_rank=rank).sort_values(["_rank", "group"]).drop(columns="_rank")
