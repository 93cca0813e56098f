"""Stage ``prepare``: one corpus -> ``manifest.csv`` + speaker-independent ``splits.csv``.

Outputs in ``out_dir``: ``manifest.csv`` (one row per kept utterance, columns
:data:`~agcc.io.manifest.MANIFEST_COLUMNS`), ``splits.csv`` (group, split, n_utts),
``skips.csv`` and ``metrics.json`` (counts per split, emotion and dropped label).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd

from agcc import tracking
from agcc.corpora import build_manifest
from agcc.corpora.base import metric_key
from agcc.corpora.splits import (
    SPLIT_USES,
    add_splits,
    check_independent,
    keep_emotions,
    split_table,
)
from agcc.io.manifest import read_manifest, write_manifest
from agcc.params import BaseParams, CorpusParams, PrepareParams
from agcc.skips import staged_outputs

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
        frame = add_splits(frame, cp.split_by, pp.split_fractions, base.seed, pp.pilot_split_order)
        log.info("writing manifest.csv and splits.csv to %s", out_dir)
        with staged_outputs(out_dir) as staging:  # published only once verified
            write_outputs(frame, cp.split_by, list(pp.split_fractions), staging)
            log.info("verifying %s independence of the written splits", cp.split_by)
            check_independent(read_manifest(staging / "manifest.csv"), cp.split_by, out_dir)
        for written in ("manifest.csv", "splits.csv"):
            stage.log_artifact(out_dir / written)
        stage.metrics |= counts(frame, dropped, cp.split_by, list(pp.split_fractions), base)
        stage.metrics |= manifest.absent.metrics() | report_empty_splits(frame, pp, name)
        stage.headline["utterances"] = len(frame)
        log.info("%s: %d utterances, %d speakers", name, len(frame), frame["speaker"].nunique())
    return frame


def report_empty_splits(frame: pd.DataFrame, pp: PrepareParams, name: str) -> dict[str, int]:
    """Log, for each split left without utterances, what cannot be computed; count them."""
    empty = [s for s in pp.split_fractions if not (frame["split"] == s).any()]
    for split in empty:
        log.warning(
            "%s: split %s has no speakers: %s cannot be computed on this corpus",
            name,
            split,
            SPLIT_USES.get(split, "what reads it"),
        )
    return {"n_empty_splits": len(empty)}


def write_outputs(
    frame: pd.DataFrame, split_by: str, order: list[str], out_dir: Path
) -> list[Path]:
    """Write manifest.csv and splits.csv; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path, splits_path = out_dir / "manifest.csv", out_dir / "splits.csv"
    write_manifest(frame, manifest_path)
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
