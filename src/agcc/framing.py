"""The acoustic frame grid (16 kHz audio, 20 ms hop, 50 frames/s) and the segment-to-frame rule.

One rule maps a segment's interval [start, end) in seconds to feature frames: frame t covers
[t / r, (t + 1) / r); a segment takes frames max(0, floor(start r)) .. max(that + 1, ceil(end r)),
with a 1e-6-frame tolerance for float error in the times, clipped to the utterance. It is
:func:`frame_range` (vectorised, used by training); :func:`segment_frames` applies it to one
interval (Fig. 2).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000


FRAME_RATE = 50.0


HOP = 320  # samples per 20 ms frame at 16 kHz


WIN = 400  # 25 ms analysis window


def grid_frames(n_samples: int) -> int:
    """Frames of an utterance of ``n_samples`` at 16 kHz: F(n) = floor(n / 320 + 1/2)."""
    return (int(n_samples) + HOP // 2) // HOP


#: Rounding slack when turning segment times into frame indices (0.3 * 50 = 15.000000000000002,
#: 0.58 * 50 = 28.999...).
TIME_EPS = 1e-6


def frame_range(
    seg_start: np.ndarray, seg_end: np.ndarray, n_frames: np.ndarray, rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature frames [lo, hi) of segments: max(0, floor(s rate)) .. max(lo + 1, ceil(e rate)).

    Frame t covers [t / rate, (t + 1) / rate); a ``TIME_EPS``-frame tolerance absorbs float
    error in the times, and ranges are clipped to the utterance's ``n_frames``. Returns lo, hi
    and ``inside``, the mask of segments starting before the utterance's last frame ends (the
    others, e.g. a video running past the end of the audio, have no acoustic frame; their lo,
    hi are clipped to the last frame and must not be used).
    """
    n = np.asarray(n_frames)
    lo = np.maximum(np.floor(np.asarray(seg_start) * rate + TIME_EPS).astype(np.int64), 0)
    hi = np.maximum(lo + 1, np.ceil(np.asarray(seg_end) * rate - TIME_EPS).astype(np.int64))
    inside = lo < n
    lo = np.minimum(lo, np.maximum(n - 1, 0))
    return lo, np.clip(hi, lo + 1, np.maximum(n, 1)), inside


def segment_frames(start: float, end: float, n_frames: int, rate: float = FRAME_RATE) -> slice:
    """Frames of one interval [start, end) s by :func:`frame_range`; empty when not inside.

    An interval starting at or after the last frame's end gives the empty slice
    ``n_frames:n_frames``.
    """
    lo, hi, inside = frame_range(np.array([start]), np.array([end]), np.array([n_frames]), rate)
    if not inside[0]:
        return slice(n_frames, n_frames)
    return slice(int(lo[0]), int(hi[0]))
