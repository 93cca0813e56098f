"""Stage ``prepare``: one corpus -> ``manifest.csv`` + speaker-independent ``splits.csv``.

Outputs in ``out_dir``: ``manifest.csv`` (one row per kept utterance, columns
:data:`~agcc.corpora.MANIFEST_COLUMNS`), ``splits.csv`` (group, split, n_utts), ``skips.csv`` and
``metrics.json`` (counts per split, emotion and dropped label).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd

from agcc import tracking
from agcc.corpora import build_manifest
from agcc.corpora.base import metric_key
from agcc.corpora.splits import assign_splits
from agcc.params import BaseParams, CorpusParams, PrepareParams

log = logging.getLogger(__name__)


def run(
    name: str, cp: CorpusParams, pp: PrepareParams, base: BaseParams, out_dir: Path
) -> pd.DataFrame:
    """Build, filter and split one corpus's manifest; write and log it; return the manifest."""
    out_dir = Path(out_dir)
    params = {"corpus": cp.model_dump(), "prepare": pp.model_dump(), "base": base.model_dump()}
    with tracking.corpus_stage_run("prepare", name, params, out_dir, base.max_skip_share) as stage:
        log.info("reading corpus %s with adapter %s from %s", name, cp.adapter, cp.root)
        manifest = build_manifest(name, cp, stage.skips)
        stage.skips.n_seen = manifest.n_seen
        log.info("checking skips: %d of %d items", stage.skips.n_skipped, manifest.n_seen)
        stage.skips.check(base.max_skip_share)  # fail before splitting a mostly skipped corpus
        log.info("keeping emotions %s", ", ".join(base.emotions))
        frame, dropped = keep_emotions(manifest.frame, manifest.dropped, base.emotions)
        log.info("assigning %s-independent splits with seed %d", cp.split_by, base.seed)
        frame = add_splits(frame, cp.split_by, pp.split_fractions, base.seed)
        log.info("writing manifest.csv and splits.csv to %s", out_dir)
        for path in write_outputs(frame, cp.split_by, list(pp.split_fractions), out_dir):
            stage.log_artifact(path)
        stage.metrics |= counts(frame, dropped, cp.split_by, list(pp.split_fractions), base)
        log.info("%s: %d utterances, %d speakers", name, len(frame), frame["speaker"].nunique())
    return frame


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
        raise ValueError(
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


def write_outputs(
    frame: pd.DataFrame, split_by: str, order: list[str], out_dir: Path
) -> list[Path]:
    """Write manifest.csv and splits.csv; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path, splits_path = out_dir / "manifest.csv", out_dir / "splits.csv"
    frame.to_csv(manifest_path, index=False)
    split_table(frame, split_by, order).to_csv(splits_path, index=False)
    return [manifest_path, splits_path]


def counts(
    frame: pd.DataFrame,
    dropped: Counter[str],
    split_by: str,
    order: list[str],
    base: BaseParams,
) -> dict[str, float]:
    """Headline counts: utterances, speakers, groups, per split, per emotion, dropped per label."""
    out: dict[str, float] = {
        "n_utts": len(frame),
        "n_speakers": frame["speaker"].nunique(),
        "n_groups": frame[split_by].nunique(),
        "n_dropped": sum(dropped.values()),
    }
    for emotion in base.emotions:
        out[f"emotion.{emotion}"] = int((frame["emotion"] == emotion).sum())
    for split in order:
        part = frame[frame["split"] == split]
        out[f"split.{split}.n_utts"] = len(part)
        out[f"split.{split}.n_speakers"] = part["speaker"].nunique()
        out[f"split.{split}.n_groups"] = part[split_by].nunique()
        for emotion in base.emotions:
            out[f"split.{split}.{emotion}"] = int((part["emotion"] == emotion).sum())
    for label, n in sorted(dropped.items()):
        out[f"dropped.{metric_key(label)}"] = n
    return out
