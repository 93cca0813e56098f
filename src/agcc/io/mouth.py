"""Mouth tracks: mouth.npz of the landmarks stage, utt_id -> (time (F,), mouth (F, 24)).

Arrays: utt_id (N,), offsets (N + 1,) int64, time (sum F,) float64 s, mouth (sum F, 24) float32
(normalised outer-lip points 48-59, x then y interleaved as written by the landmarks stage).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_mouth(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read ``mouth.npz`` into utt_id -> (time (F,), mouth (F, 24))."""
    path = Path(path)
    with np.load(path) as z:
        missing = [k for k in ("utt_id", "offsets", "time", "mouth") if k not in z.files]
        if missing:
            raise ValueError(f"{path}: not a mouth.npz, missing arrays {missing}")
        ids, offsets, time, mouth = z["utt_id"], z["offsets"], z["time"], z["mouth"]
    if len(offsets) != len(ids) + 1 or offsets[-1] != len(time) or len(time) != len(mouth):
        raise ValueError(
            f"{path}: inconsistent arrays: {len(ids)} ids, {len(offsets)} offsets, "
            f"{len(time)} times, {len(mouth)} mouth frames"
        )
    return {
        str(u): (time[a:b], mouth[a:b])
        for u, a, b in zip(ids, offsets[:-1], offsets[1:], strict=True)
    }
