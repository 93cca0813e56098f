"""The ``segments`` stage: one mouth-trajectory segment per vowel token (METHOD.md section 3).

Each vowel interval [start, end) of the phone alignment, widened by an optional context margin,
is resampled from the landmark track at a fixed frame rate so that 30 fps video still gives
several frames per vowel. The interval times are kept so the acoustic side (wav2vec2 at 50
frames/s) can be indexed with the same segment.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from agcc import tracking
from agcc.io.mouth import load_mouth
from agcc.io.segments import SEGMENT_COLUMNS, save_segments
from agcc.io.textgrid import read_textgrid
from agcc.params import BaseParams, SegmentParams
from agcc.phones import vowel_intervals
from agcc.skips import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cut:
    """A resampled segment, or the reason it was dropped."""

    frames: np.ndarray | None  # (T, 24) float32 when kept
    seg_start: float
    seg_end: float
    dropped: str = ""


def sample_times(start: float, end: float, fps: float) -> np.ndarray:
    """Frame-centre times of [start, end) at ``fps``: t_k = start + (k + 0.5) / fps.

    The count is round((end - start) * fps), so a 100 ms vowel gives 5 frames at 50 fps.
    """
    n = int(round((end - start) * fps))
    return start + (np.arange(n) + 0.5) / fps


def cut_segment(
    time: np.ndarray, mouth: np.ndarray, start: float, end: float, sp: SegmentParams
) -> Cut:
    """Resample the mouth track (F,) x (F, 24) over [start - margin, end + margin).

    Linear interpolation between video frames; a sample whose neighbouring frames are missing
    (NaN after gap interpolation) invalidates the segment, as does an interval outside the video.
    """
    margin = sp.context_ms / 1000.0
    s0, s1 = max(start - margin, 0.0), end + margin
    t = sample_times(s0, s1, sp.fps)
    if len(t) < sp.min_frames:
        return Cut(None, s0, s1, "too_short")
    half_frame = 0.5 * float(np.median(np.diff(time))) if len(time) > 1 else 0.0
    if t[0] < time[0] - half_frame or t[-1] > time[-1] + half_frame:
        return Cut(None, s0, s1, "outside_video")
    tc = np.clip(t, time[0], time[-1])
    frames = np.stack([np.interp(tc, time, mouth[:, j]) for j in range(mouth.shape[1])], axis=1)
    if np.isnan(frames).any():
        return Cut(None, s0, s1, "landmark_gap")
    return Cut(frames.astype(np.float32), s0, s1)  # (T, 24)


def segment_utterance(
    row: pd.Series, track: tuple[np.ndarray, np.ndarray], sp: SegmentParams, dropped: Counter
) -> list[tuple[dict, np.ndarray]]:
    """All kept vowel segments of one utterance as (table row, (T, 24) frames) pairs.

    ``dropped`` counts segments dropped by reason and unknown phone labels met on the way.
    """
    tg = str(row["textgrid"]) if isinstance(row["textgrid"], str) else ""
    if not tg:
        raise InputError("<manifest>", "no TextGrid configured for this utterance")
    alignment = read_textgrid(tg, speaker=None)
    if alignment.unknown:
        log.warning("%s: unknown phone labels %s (not vowels, kept out)", tg, alignment.unknown)
        dropped.update({f"unknown_phone.{k}": v for k, v in alignment.unknown.items()})
    tokens = vowel_intervals(alignment, sp.vowels, sp.stressed_ah_as_ah)
    if not tokens:
        raise InputError(tg, f"no target vowel ({', '.join(sp.vowels)}) in the phones tier")
    time, mouth = track
    out = []
    for tok in tokens:
        cut = cut_segment(time, mouth, tok.start, tok.end, sp)
        if cut.frames is None:
            dropped[cut.dropped] += 1
            continue
        meta = {
            "utt_id": row["utt_id"],
            "vowel": tok.vowel,
            "phone": tok.phone,
            "word": tok.word,
            "start": tok.start,
            "end": tok.end,
            "seg_start": cut.seg_start,
            "seg_end": cut.seg_end,
            "n_frames": len(cut.frames),
        }
        out.append((meta, cut.frames))
    return out


def build_segments(
    manifest: pd.DataFrame, tracks: dict, sp: SegmentParams, run: tracking.StageRun
) -> tuple[pd.DataFrame, np.ndarray, Counter]:
    """Segment every utterance; returns the table, the stacked frames and segment drop counts."""
    rows, frames, dropped = [], [], Counter()
    run.skips.n_seen = len(manifest)
    for _, row in tqdm(manifest.iterrows(), total=len(manifest), desc=f"segments {run.stage}"):
        if row["utt_id"] not in tracks:
            run.skips.add(row["utt_id"], row["landmarks"], "no mouth track (see landmarks skips)")
            continue
        try:
            cuts = segment_utterance(row, tracks[row["utt_id"]], sp, dropped)
        except InputError as e:
            run.skips.add_error(row["utt_id"], e)
            continue
        for meta, f in cuts:
            rows.append(meta)
            frames.append(f)
    table = pd.DataFrame(rows, columns=[c for c in SEGMENT_COLUMNS if c in rows[0]] if rows else [])
    return table, frames, dropped


def finish_table(table: pd.DataFrame, manifest: pd.DataFrame, corpus: str) -> pd.DataFrame:
    """Join utterance metadata, number the segments and give each its frame offset."""
    meta = manifest.set_index("utt_id")[["speaker", "session", "gender", "split", "emotion"]]
    table = table.join(meta, on="utt_id")
    table["corpus"] = corpus
    table["seg_id"] = table["utt_id"] + "#" + table.groupby("utt_id").cumcount().astype(str)
    table["offset"] = np.concatenate([[0], np.cumsum(table["n_frames"].to_numpy())[:-1]])
    return table[SEGMENT_COLUMNS]


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
        k if k.startswith("unknown_phone.") else f"dropped_segments.{k}": v
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
        frame = pd.read_csv(manifest, keep_default_na=False, dtype={"session": str})
        tracks = load_mouth(mouth)
        log.info("segmenting %d utterances", len(frame))
        table, frames, dropped = build_segments(frame, tracks, sp, run_)
        if table.empty:
            raise InputError(manifest, "no vowel segment survived; see skips.csv for why")
        table = finish_table(table, frame, name)
        save_segments(table, frames, out_dir)
        run_.metrics |= _metrics(table, dropped)
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
