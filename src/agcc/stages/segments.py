"""Stage ``segments``: one mouth-trajectory segment per vowel token (docs/method.md section 3).

The cutting rule is :mod:`agcc.vowel_segments`; the outputs are written by :mod:`agcc.io.segments`.
An utterance whose audio, TextGrid and landmark track disagree in duration by more than
``segments.max_duration_mismatch_s`` is skipped (kind ``duration_mismatch``). segments.csv/.npz
are written to a staging folder and moved into ``out_dir`` only after the skip check passes.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd

from agcc import tracking
from agcc.io.manifest import read_manifest
from agcc.io.mouth import load_mouth
from agcc.io.segments import save_segments
from agcc.params import BaseParams, SegmentParams
from agcc.skips import InputError, staged_outputs
from agcc.vowel_segments import build_segments, finish_table

log = logging.getLogger(__name__)

#: Manifest columns the stage reads (the align stage's manifest.csv).
SEGMENTS_INPUT = (
    "utt_id",
    "landmarks",
    "textgrid",
    "speaker",
    "session",
    "gender",
    "split",
    "emotion",
)


def _metrics(table: pd.DataFrame, dropped: Counter) -> dict[str, float]:
    """Counts per vowel, split and emotion, frame statistics and segment drop counts."""
    m: dict[str, float] = {"n_segments": len(table), "n_utts": table["utt_id"].nunique()}
    for col in ("vowel", "split", "emotion"):
        m |= {f"{col}.{k}": int(v) for k, v in table[col].value_counts().items()}
    if len(table):
        m |= {
            "frames.mean": round(float(table["n_frames"].mean()), 3),
            "frames.max": int(table["n_frames"].max()),
        }
    return m | {
        k if k.startswith("unknown_phone") else f"dropped_segments.{k}": v
        for k, v in dropped.items()
    }


def run(
    name: str, manifest: Path, mouth: Path, sp: SegmentParams, base: BaseParams, out_dir: Path
) -> pd.DataFrame:
    """Cut the vowel segments of one corpus and write them to ``out_dir``."""
    with tracking.corpus_stage_run(
        "segments", name, sp.model_dump() | {"corpus": name}, out_dir, base.max_skip_share
    ) as run_:
        log.info("reading manifest %s and mouth tracks %s", manifest, mouth)
        frame = read_manifest(manifest, required=SEGMENTS_INPUT)
        tracks = load_mouth(mouth)
        log.info("segmenting %d utterances", len(frame))
        run_.skips.n_seen = len(frame)
        table, frames, dropped = build_segments(frame, tracks, sp, run_.skips, f"segments {name}")
        if table.empty:
            raise InputError(manifest, "no vowel segment survived; see skips.csv for why")
        table = finish_table(table, frame, name)
        with staged_outputs(out_dir) as staging:
            save_segments(table, frames, staging)
            run_.skips.check(base.max_skip_share)  # a failing stage publishes nothing
        run_.metrics |= _metrics(table, dropped)
        run_.headline["segments"] = len(table)
        # utterances read fine but whose every vowel was dropped (too short, gaps)
        run_.metrics["n_utts_without_segments"] = (
            len(frame) - run_.skips.n_skipped - table["utt_id"].nunique()
        )
        log.info(
            "%s: %d segments from %d utterances; dropped %s",
            name,
            len(table),
            table["utt_id"].nunique(),
            dict(dropped) or "none",
        )
        return table
