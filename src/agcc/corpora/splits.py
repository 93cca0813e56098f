"""Speaker- (or session-) independent, seeded splits of a corpus, and the emotion filter."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from agcc.errors import DataError

log = logging.getLogger(__name__)

#: What each split is for: named when a small corpus leaves a split without speakers.
SPLIT_USES = {
    "train": "training on this corpus (source_only, upper bound)",
    "val": "early stopping on this corpus and its share of the AG cluster fit (cluster.fit_split)",
    "dev": "tuning with this corpus as the target",
    "test": "the test UAR with this corpus as the target (Table II)",
}


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


def assign_splits(
    groups: Sequence[str],
    fractions: dict[str, float],
    seed: int,
    fill_order: Sequence[str] = (),
    rank: dict[str, int] | None = None,
) -> dict[str, str]:
    """Map each distinct group (speaker or session) to one split; no group spans two splits.

    The distinct groups are sorted, shuffled with ``numpy.random.default_rng(seed)`` and cut in the
    order of ``fractions`` into blocks sized by :func:`allocate`, so the result depends only on the
    set of groups, the fractions and the seed. This needs one group per split (and never fewer
    than 4 groups); a smaller corpus (a pilot of two or three speakers) goes to
    :func:`small_splits` with ``fill_order`` and ``rank``, and without ``fill_order`` is an error.
    """
    distinct = sorted(set(groups))
    need = max(4, len(fractions))
    if len(distinct) < need:
        if fill_order and len(distinct) >= 2:
            return small_splits(distinct, fill_order, rank or {})
        raise DataError(
            f"speaker-independent splits need at least {need} distinct groups for "
            f"{len(fractions)} splits {list(fractions)}, got {len(distinct)}: {distinct}"
            + (" (a pilot needs at least 2: one train, one val)" if fill_order else "")
        )
    order = np.random.default_rng(seed).permutation(len(distinct))
    shuffled = [distinct[i] for i in order]
    out: dict[str, str] = {}
    start = 0
    for split, count in allocate(len(distinct), fractions).items():
        out |= dict.fromkeys(shuffled[start : start + count], split)
        start += count
    return out


def small_splits(
    groups: Sequence[str], fill_order: Sequence[str], rank: dict[str, int]
) -> dict[str, str]:
    """One group per split, splits taken in ``fill_order`` (fewer groups than splits).

    Groups go in decreasing ``rank`` (then name), so the group with the most video goes to the
    first split of ``fill_order`` (``val`` by default: the split the AG clusters are fitted on).
    The splits left without a group are logged; what needs them cannot be computed.
    """
    ordered = sorted(groups, key=lambda g: (-rank.get(g, 0), g))
    out = dict(zip(ordered, fill_order, strict=False))
    empty = list(fill_order[len(ordered) :])
    log.warning(
        "only %d groups for %d splits: one group each in %s; no group in %s (what needs those "
        "splits cannot be computed on this corpus)",
        len(ordered),
        len(fill_order),
        ", ".join(f"{s}={g}" for g, s in out.items()),
        ", ".join(empty),
    )
    return out


def check_independent(frame: pd.DataFrame, split_by: str, where: str) -> None:
    """Raise DataError naming every group (speaker or session) found in two or more splits."""
    spans = frame.groupby(split_by)["split"].agg(lambda s: sorted(set(s)))
    shared = {g: s for g, s in spans.items() if len(s) > 1}
    if shared:
        named = "; ".join(f"{g} in {', '.join(s)}" for g, s in sorted(shared.items())[:10])
        raise DataError(
            f"{where}: splits are not {split_by}-independent: {len(shared)} {split_by}(s) in "
            f"two splits: {named}"
        )


def keep_emotions(
    frame: pd.DataFrame, dropped: Counter[str], emotions: tuple[str, ...]
) -> tuple[pd.DataFrame, Counter[str]]:
    """Rows whose emotion is in ``emotions``; the others are added to the dropped counts."""
    keep = frame["emotion"].isin(emotions)
    dropped = dropped + Counter(frame.loc[~keep, "emotion"].tolist())
    return frame.loc[keep].reset_index(drop=True), dropped


def add_splits(
    frame: pd.DataFrame,
    split_by: str,
    fractions: dict[str, float],
    seed: int,
    fill_order: Sequence[str] = (),
) -> pd.DataFrame:
    """Fill the ``split`` column so that each speaker (or session) lies in exactly one split.

    A corpus with fewer groups than splits is split by :func:`small_splits` along
    ``fill_order``, groups ranked by their utterances with a video or landmark file.
    """
    empty = int((frame[split_by] == "").sum())
    if empty:
        raise DataError(
            f"{empty} of {len(frame)} utterances have an empty {split_by!r}; cannot split by "
            f"{split_by} (e.g. {frame.loc[frame[split_by] == '', 'utt_id'].iloc[0]!r})"
        )
    visual = (frame["video"] != "") | (frame["landmarks"] != "")
    rank = visual.groupby(frame[split_by]).sum().astype(int).to_dict()
    split_of = assign_splits(frame[split_by].tolist(), fractions, seed, fill_order, rank)
    return frame.assign(split=frame[split_by].map(split_of).fillna(""))


def split_table(frame: pd.DataFrame, split_by: str, order: list[str]) -> pd.DataFrame:
    """One row per group: group, split, n_utts (in split order, then group)."""
    table = frame.groupby(split_by, sort=True).agg(
        split=("split", "first"), n_utts=("utt_id", "size")
    )
    table = table.reset_index().rename(columns={split_by: "group"})
    rank = table["split"].map({s: i for i, s in enumerate(order)})
    return table.assign(_rank=rank).sort_values(["_rank", "group"]).drop(columns="_rank")
