"""Vowel segments: segments.csv (one row per segment) and segments.npz (mouth frames).

segments.npz holds seg_id (S,), offsets (S + 1,) int64 and mouth (sum T_i, 24) float32; segment i
is mouth[offsets[i]:offsets[i + 1]], in the row order of segments.csv.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agcc.errors import DataError

SEGMENT_COLUMNS = [
    "seg_id",
    "utt_id",
    "corpus",
    "speaker",
    "session",
    "gender",
    "split",
    "emotion",
    "vowel",
    "phone",
    "word",
    "start",
    "end",
    "seg_start",
    "seg_end",
    "n_frames",
    "offset",
]


def save_segments(table: pd.DataFrame, frames: list[np.ndarray], out_dir: Path) -> None:
    """Write segments.csv and segments.npz (mouth (S_total, 24) float32, offsets (S+1,))."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "segments.csv", index=False)
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames])]).astype(np.int64)
    mouth = np.concatenate(frames).astype(np.float32) if frames else np.zeros((0, 24), np.float32)
    np.savez(
        out_dir / "segments.npz", seg_id=table["seg_id"].to_numpy(str), offsets=offsets, mouth=mouth
    )


def load_segments(seg_dir: str | Path) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Read a segments folder back: the table and one (T_i, 24) array per row."""
    seg_dir = Path(seg_dir)
    table = pd.read_csv(seg_dir / "segments.csv", keep_default_na=False, dtype={"session": str})
    with np.load(seg_dir / "segments.npz") as z:
        mouth, offsets, ids = z["mouth"], z["offsets"], z["seg_id"]
    if len(ids) != len(table) or (ids != table["seg_id"].to_numpy(str)).any():
        raise DataError(f"{seg_dir}: segments.npz and segments.csv disagree; re-run the stage")
    return table, [mouth[offsets[i] : offsets[i + 1]] for i in range(len(table))]


def load_corpora(seg_dirs: list[Path]) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Load and check the segments of every folder; one table and one (T_i, D) list for all."""
    if not seg_dirs:
        raise DataError("no segments folder given (--segments DIR [DIR ...])")
    tables, series = [], []
    for seg_dir in seg_dirs:
        table, frames = load_segments(seg_dir)
        check_segments(table, frames, Path(seg_dir))
        tables.append(table)
        series.extend(frames)
    table = pd.concat(tables, ignore_index=True)
    names = [t["corpus"].iloc[0] for t in tables]
    if len(set(names)) != len(names) or any(t["corpus"].nunique() != 1 for t in tables):
        raise DataError(f"each segments folder must hold one distinct corpus, got {names}")
    widths = {f.shape[1] for f in series}
    if len(widths) != 1:
        raise DataError(f"segments of {seg_dirs} mix frame widths {sorted(widths)}")
    return table, series


def check_segments(table: pd.DataFrame, frames: list[np.ndarray], seg_dir: Path) -> None:
    """Fail naming the folder and segment on an empty corpus, NaN/inf values or < 2 frames."""
    if not len(table):
        raise DataError(f"{seg_dir}: no segments in segments.csv (empty corpus)")
    for seg_id, f in zip(table["seg_id"], frames, strict=True):
        if f.ndim != 2 or len(f) < 2:
            raise DataError(
                f"{seg_dir}: segment {seg_id!r} has {len(f)} frame(s), shape {f.shape}; Soft-DTW "
                "clustering needs >= 2 frames per segment (segments.min_frames)"
            )
        if not np.isfinite(f).all():
            raise DataError(f"{seg_dir}: segment {seg_id!r} contains NaN or infinite values")
