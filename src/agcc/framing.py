"""The acoustic frame grid (16 kHz audio, 20 ms hop, 50 frames/s) and the segment-to-frame rule.

One rule maps a segment's interval [start, end) in seconds to feature frames: frame t covers
[t / r, (t + 1) / r); a segment takes frames floor(start r) .. max(that + 1, ceil(end r)), with a
1e-6-frame tolerance for float error in the times. Training and Fig. 2 both use it.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 16_000


FRAME_RATE = 50.0


HOP = 320  # samples per 20 ms frame at 16 kHz


WIN = 400  # 25 ms analysis window


def grid_frames(n_samples: int) -> int:
    """Frames of an utterance of ``n_samples`` at 16 kHz: F(n) = floor(n / 320 + 1/2)."""
    return (int(n_samples) + HOP // 2) // HOP


def segment_frames(start: float, end: float, n_frames: int, rate: float = FRAME_RATE) -> slice:
    """Frames of the interval [start, end) s: floor(start r) .. max(that + 1, ceil(end r)).

    Frame t covers [t / r, (t + 1) / r). A 1e-6-frame tolerance absorbs float error in the
    times (0.3 * 50 = 15.000000000000002 must not give frame 16). Clipped to 0 .. n_frames; an
    interval starting at or after the last frame's end gives an empty slice.
    """
    lo = max(0, math.floor(start * rate + 1e-6))
    hi = max(lo + 1, math.ceil(end * rate - 1e-6))
    lo, hi = min(lo, n_frames), min(hi, n_frames)
    return slice(lo, hi)


#: Rounding slack when turning segment times into frame indices (0.58 * 50 = 28.999...).
TIME_EPS = 1e-6


def frame_range(
    seg_start: np.ndarray, seg_end: np.ndarray, n_frames: np.ndarray, rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature frames [lo, hi) of segments: floor(s * rate) .. max(lo + 1, ceil(e * rate)).

    Frame t covers [t / rate, (t + 1) / rate); ranges are clipped to the utterance's frames.
    Returns lo, hi and a mask of the segments that start inside the utterance (the others,
    e.g. a video running past the end of the audio, have no acoustic frame).
    """
    lo = np.floor(np.asarray(seg_start) * rate + TIME_EPS).astype(np.int64)
    hi = np.maximum(lo + 1, np.ceil(np.asarray(seg_end) * rate - TIME_EPS).astype(np.int64))
    inside = (lo >= 0) & (lo < n_frames)
    lo = np.clip(lo, 0, np.maximum(n_frames - 1, 0))
    return lo, np.clip(hi, lo + 1, np.maximum(n_frames, 1)), inside
