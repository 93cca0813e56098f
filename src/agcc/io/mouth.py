"""Mouth tracks: mouth.npz of the landmarks stage, utt_id -> (time (F,), mouth (F, 24)).

Arrays: utt_id (N,), offsets (N + 1,) int64, time (sum F,) float64 s, mouth (sum F, 24) float32
(normalised outer-lip points 48-59, x then y interleaved as written by the landmarks stage);
utterance i spans rows offsets[i]:offsets[i+1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agcc.errors import DataError
from agcc.mouth import MOUTH


def write_mouth(
    path: str | Path,
    utt_ids: Sequence[str],
    times: Sequence[np.ndarray],
    mouths: Sequence[np.ndarray],
) -> Path:
    """Write utt_id (N,), offsets (N+1,), time (F,), mouth (F, 24) float32 to one npz."""
    path = Path(path)
    offsets = np.concatenate(([0], np.cumsum([len(t) for t in times]))).astype(np.int64)
    time = np.concatenate(list(times)) if len(times) else np.zeros(0)
    mouth = np.concatenate(list(mouths)) if len(mouths) else np.zeros((0, 2 * len(MOUTH)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:  # written then renamed, so a crash leaves no half file
        np.savez_compressed(
            f,
            utt_id=np.array(list(utt_ids), dtype=str),
            offsets=offsets,
            time=time.astype(np.float64),
            mouth=mouth.astype(np.float32),
        )
    tmp.replace(path)
    return path


def load_mouth(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read ``mouth.npz`` into utt_id -> (time (F,), mouth (F, 24)).

    DataError naming the file for missing or inconsistent arrays, and naming the utterance for
    an infinite mouth value or a non-finite time (NaN mouth values are missing frames).
    """
    path = Path(path)
    with np.load(path) as z:
        missing = [k for k in ("utt_id", "offsets", "time", "mouth") if k not in z.files]
        if missing:
            raise DataError(f"{path}: not a mouth.npz, missing arrays {missing}")
        ids, offsets, time, mouth = z["utt_id"], z["offsets"], z["time"], z["mouth"]
    if len(offsets) != len(ids) + 1 or offsets[-1] != len(time) or len(time) != len(mouth):
        raise DataError(
            f"{path}: inconsistent arrays: {len(ids)} ids, {len(offsets)} offsets, "
            f"{len(time)} times, {len(mouth)} mouth frames"
        )
    bad = np.flatnonzero(np.isinf(mouth).any(axis=1) | ~np.isfinite(time))
    if len(bad):  # NaN marks a missing frame; inf (or a non-finite time) is never valid
        i = int(np.searchsorted(offsets, bad[0], side="right") - 1)
        raise DataError(
            f"{path}: utterance {str(ids[i])!r} has infinite mouth values or non-finite times "
            f"(frame {int(bad[0] - offsets[i])}); re-run the landmarks stage"
        )
    return {
        str(u): (time[a:b], mouth[a:b])
        for u, a, b in zip(ids, offsets[:-1], offsets[1:], strict=True)
    }
