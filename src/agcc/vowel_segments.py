"""Vowel segments: the mouth track of each vowel token, resampled at a fixed frame rate.

Each vowel interval [start, end) of the phone alignment, widened by an optional context margin,
is resampled from the landmark track at ``segments.fps`` so that 30 fps video still gives
several frames per vowel (docs/method.md section 3). The interval times are kept so the acoustic
side (50 frames/s) can be indexed with the same segment. Before cutting, the durations of the
utterance's audio, TextGrid and landmark track must agree (:func:`check_durations`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from agcc.io.audio import audio_duration
from agcc.io.segments import SEGMENT_COLUMNS
from agcc.io.textgrid import read_textgrid
from agcc.params import SegmentParams
from agcc.phones import vowel_intervals
from agcc.skips import InputError, SkipReport, metric_key

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
    if not np.isfinite(frames).all():
        return Cut(None, s0, s1, "landmark_gap")
    return Cut(frames.astype(np.float32), s0, s1)  # (T, 24)


def track_end(time: np.ndarray) -> float:
    """End time (s) of a landmark track: its last frame time plus one median frame step."""
    if len(time) == 0:
        return 0.0
    step = float(np.median(np.diff(time))) if len(time) > 1 else 0.0
    return float(time[-1]) + step


def check_durations(row: pd.Series, tg_end: float, time: np.ndarray, tolerance: float) -> None:
    """InputError (kind ``duration_mismatch``) when audio, TextGrid and track lengths disagree.

    The audio duration comes from its header (``row["audio"]``, when the manifest names one;
    unreadable, truncated or too-short audio raises its own InputError), the TextGrid's from
    its end time and the track's from :func:`track_end`. The error names the file whose
    duration is farthest from the median of the three, and lists all of them.
    """
    spans = {"TextGrid": (str(row["textgrid"]), tg_end)}
    audio = row.get("audio", "")
    if isinstance(audio, str) and audio:
        spans["audio"] = (audio, audio_duration(audio))
    landmarks = row.get("landmarks", "")
    spans["landmark track"] = (landmarks if isinstance(landmarks, str) else "", track_end(time))
    seconds = np.array([d for _, d in spans.values()])
    if seconds.max() - seconds.min() <= tolerance:
        return
    odd = list(spans)[int(np.argmax(np.abs(seconds - np.median(seconds))))]
    listed = ", ".join(f"{k} {d:.3f} s" for k, (_, d) in spans.items())
    raise InputError(
        spans[odd][0] or "<manifest>",
        f"durations disagree by {seconds.max() - seconds.min():.3f} s > "
        f"segments.max_duration_mismatch_s {tolerance} s ({listed}; the {odd} is off)",
        kind="duration_mismatch",
    )


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
    check_durations(row, alignment.end, track[0], sp.max_duration_mismatch_s)
    if alignment.unknown:
        log.warning("%s: unknown phone labels %s (not vowels, kept out)", tg, alignment.unknown)
        # raw labels (<unk>, [noise], a,b) are no metric names: count them under a safe key
        dropped.update(
            {f"unknown_phone.{metric_key(k)}": v for k, v in alignment.unknown.items()}
            | {"unknown_phone_utts": 1}
        )
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
    manifest: pd.DataFrame, tracks: dict, sp: SegmentParams, skips: SkipReport, desc: str = ""
) -> tuple[pd.DataFrame, list[np.ndarray], Counter]:
    """Segment every utterance; returns the table, the frames of each segment and drop counts.

    Utterances without a mouth track or whose TextGrid is unusable go to ``skips``.
    """
    rows, frames, dropped = [], [], Counter()
    for _, row in tqdm(manifest.iterrows(), total=len(manifest), desc=desc):
        if row["utt_id"] not in tracks:
            skips.add(row["utt_id"], row["landmarks"], "no mouth track (see landmarks skips)")
            continue
        try:
            cuts = segment_utterance(row, tracks[row["utt_id"]], sp, dropped)
        except InputError as e:
            skips.add_error(row["utt_id"], e)
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
