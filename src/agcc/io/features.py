"""The feature store: features.npz (packed frames) and meta.json of the features stage.

features.npz: utt_id (N,), offsets (N + 1,) int64, frames (sum F_i, D) or (sum F_i, L, D) float16;
utterance i is frames[offsets[i]:offsets[i + 1]]. meta.json names the encoder, layer(s), dim and
frame rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agcc.errors import DataError, MissingInputError


@dataclass
class FrameWriter:
    """Appends frames utterance by utterance to a raw temp file; ``close`` writes the npz.

    Memory stays at one batch even for all-layer features of a large corpus.
    """

    path: Path
    ids: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    tail: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        """Open the temp file beside the npz."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".frames.tmp")
        self._file = self.tmp.open("wb")

    def add(self, utt_id: str, frames: np.ndarray) -> None:
        """Append one utterance's frames (F, D) or (F, L, D) as float16."""
        data = np.ascontiguousarray(frames, dtype=np.float16)
        if self.tail is None:
            self.tail = data.shape[1:]
        if data.shape[1:] != self.tail:
            raise DataError(f"{utt_id}: frame shape {data.shape[1:]} != {self.tail}")
        self._file.write(data.tobytes())
        self.ids.append(utt_id)
        self.lengths.append(len(data))

    def discard(self) -> None:
        """Close and delete the temp file (after a failure)."""
        self._file.close()
        self.tmp.unlink(missing_ok=True)

    def close(self, tail: tuple[int, ...]) -> int:
        """Write features.npz (utt_id, offsets, frames); returns the total frame count."""
        self._file.close()
        tail = self.tail or tail
        offsets = np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)]).astype(np.int64)
        total = int(offsets[-1])
        frames: np.ndarray = np.zeros((0, *tail), dtype=np.float16)
        if total:
            frames = np.memmap(self.tmp, dtype=np.float16, mode="r", shape=(total, *tail))
        np.savez(self.path, utt_id=np.array(self.ids, dtype=str), offsets=offsets, frames=frames)
        del frames
        self.tmp.unlink()
        return total


def load_features(feat_dir: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A features folder as utt_id -> frames (F, D) or (F, L, D) float16, and meta.json."""
    utt_ids, offsets, frames, meta = read_features(Path(feat_dir))
    by_utt = {str(u): frames[offsets[i] : offsets[i + 1]] for i, u in enumerate(utt_ids)}
    return by_utt, meta


def write_meta(feat_dir: Path, meta: dict[str, Any]) -> Path:
    """Write meta.json beside features.npz."""
    path = Path(feat_dir) / "meta.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


#: Frames per chunk when scanning features for NaN/inf values.
SCAN_CHUNK = 1 << 18


def _first_nonfinite(frames: np.ndarray) -> int:
    """Index of the first frame with a NaN or infinite value, or -1 (scanned in chunks)."""
    for s in range(0, len(frames), SCAN_CHUNK):
        chunk = frames[s : s + SCAN_CHUNK]
        chunk = chunk.reshape(len(chunk), -1)  # (n, D) or (n, L * D)
        bad = np.flatnonzero(~np.isfinite(chunk).all(axis=1))
        if len(bad):
            return s + int(bad[0])
    return -1


def read_features(feat_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """utt_id (N,), offsets (N + 1,), frames (F, D) or (F, L, D) and meta of a features folder.

    The packed layout of the features stage is read directly (one array, no per-utterance
    copies). Malformed files and NaN/inf values are errors naming the file and the utterance.
    """
    path, meta_path = feat_dir / "features.npz", feat_dir / "meta.json"
    for p in (path, meta_path):
        if not p.is_file():
            raise MissingInputError(f"{p}: no such file; run the features stage first")
    with np.load(path) as z:
        missing = [k for k in ("utt_id", "offsets", "frames") if k not in z.files]
        if missing:
            raise DataError(f"{path}: missing arrays {missing}; found {z.files}")
        utt_ids, offsets, frames = (
            z["utt_id"].astype(str),
            z["offsets"].astype(np.int64),
            z["frames"],
        )
    if (
        len(offsets) != len(utt_ids) + 1
        or offsets[0] != 0
        or offsets[-1] != len(frames)
        or (np.diff(offsets) < 0).any()
        or frames.ndim not in (2, 3)
    ):
        raise DataError(
            f"{path}: inconsistent arrays: {len(utt_ids)} utt_ids, offsets of length "
            f"{len(offsets)} ending at {offsets[-1]}, frames {frames.shape}"
        )
    bad = _first_nonfinite(frames)
    if bad >= 0:
        i = int(np.searchsorted(offsets, bad, side="right") - 1)
        raise DataError(
            f"{path}: utterance {str(utt_ids[i])!r} has NaN or infinite features (frame "
            f"{bad - offsets[i]}); re-run the features stage"
        )
    return utt_ids, offsets, frames, json.loads(meta_path.read_text())
