"""OpenFace FeatureExtraction CSVs: the reader (landmarks stage) and the writer (dlib, demo).

Reading: columns are selected by name after stripping OpenFace's leading spaces, so OpenFace 2.0
headers (no ``face_id``, no ``eye_lmk_*``) and 2.2 ones both work. Parsing is strict: a row with
more or fewer fields than the header, or a last row without its line end (a file cut while
written or copied: ``229.9`` cut to ``22`` would still parse), is an error for the whole file,
and so is a NaN or infinite value in any column read (OpenFace writes zeros, never NaN, for
frames it failed on).

Writing: one header per layout, ``frame, [face_id,] timestamp, confidence, success, x_0 .. x_67,
y_0 .. y_67``, one line per frame, written through a temporary file and a rename. Layouts (value
formats): ``"2.2"`` as OpenFace 2.2 writes it (", " between values, face_id 0), ``"2.0"`` the
older compact one (no face_id, "," between values), ``"dlib"`` the built-in extractor's (", ",
six decimals of time, four of confidence, three of the points).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agcc.mouth import N_POINTS
from agcc.skips import InputError

log = logging.getLogger(__name__)

# OpenFace's ``left_eye_28`` part (eye_lmk 0-27) is fitted on points 36-41; its first eight
# points are the iris contour, whose mean OpenFace itself uses as the pupil.
LEFT_PUPIL = tuple(range(0, 8))
RIGHT_PUPIL = tuple(range(28, 36))
POINT_COLUMNS = tuple(f"{a}_{i}" for a in "xy" for i in range(N_POINTS))
REQUIRED_COLUMNS = ("timestamp", "success", "confidence", *POINT_COLUMNS)
PUPIL_COLUMNS = tuple(f"eye_lmk_{a}_{i}" for a in "xy" for i in (*LEFT_PUPIL, *RIGHT_PUPIL))


@dataclass
class LandmarkTrack:
    """One face's landmarks over time, in image pixels (x right, y down).

    ``time`` (F,) seconds from the CSV's ``timestamp``; ``points`` (F, 68, 2); ``pupils``
    (F, 2, 2) as (image-left, image-right) eye centres, or None when the CSV has no eye-region
    landmarks. Missing frames (failed or below the confidence threshold) are NaN.
    """

    time: np.ndarray
    points: np.ndarray
    pupils: np.ndarray | None = None


def read_openface_csv(path: str | Path, min_confidence: float) -> LandmarkTrack:
    """Read an OpenFace FeatureExtraction CSV; frames failed or below ``min_confidence`` -> NaN.

    Columns are selected by name after stripping OpenFace's leading spaces, so old headers (no
    ``face_id``, no ``eye_lmk_*``) and new ones both work. When several ``face_id`` values occur,
    the face with the most usable frames is kept (ties: the lowest id), on the grid of all
    timestamps of the file, so frames where that face was lost become missing frames rather
    than silently disappearing. Raises InputError naming the file for a missing or unparseable
    file, missing columns, frames that all failed, or timestamps that do not increase.
    """
    path = Path(path)
    table = _read_table(path)
    table["ok"] = (table["success"] == 1) & (table["confidence"] >= min_confidence)
    table = _select_face(table, path)
    time = table["timestamp"].to_numpy(np.float64)
    _check_time(time, path)
    ok = table["ok"].to_numpy(bool)
    if not ok.any():
        raise InputError(
            path,
            f"all frames failed: 0 of {len(ok)} frames have success == 1 and "
            f"confidence >= {min_confidence}",
        )
    points = np.stack(
        [table[[f"{a}_{i}" for i in range(N_POINTS)]].to_numpy(np.float64) for a in "xy"],
        axis=-1,
    )  # (F, 68, 2)
    points[~ok] = np.nan
    pupils = _pupils(table, ok)
    log.debug("%s: %d frames, %d usable", path, len(ok), int(ok.sum()))
    return LandmarkTrack(time=time, points=points, pupils=pupils)


def _read_table(path: Path) -> pd.DataFrame:
    """Read the columns we use (stripped names, numeric values) or raise InputError."""
    if not path.is_file():
        raise InputError(path, "missing file")
    wanted = {*REQUIRED_COLUMNS, *PUPIL_COLUMNS, "face_id"}
    _check_rows(path)
    try:
        table = pd.read_csv(path, skipinitialspace=True, usecols=lambda c: c.strip() in wanted)
    except pd.errors.EmptyDataError as e:
        raise InputError(path, "unreadable CSV: empty file") from e
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputError(path, f"unreadable CSV: {e}") from e
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f", ... ({len(missing)} in all)" if len(missing) > 8 else ""
        )
        raise InputError(path, f"missing columns: {shown}")
    if table.empty:
        raise InputError(path, "no frames: the CSV has a header but no rows")
    try:
        table = table.apply(pd.to_numeric)
    except (ValueError, TypeError) as e:
        raise InputError(path, f"unreadable CSV: non-numeric value ({e})") from e
    _check_finite(table, path)
    return table


def _check_rows(path: Path) -> None:
    """InputError (kind ``malformed_csv``) for a row whose field count differs from the header's.

    Also for a cut last row: when the file does not end with a line end, its last field must be
    written like the row before's (same number of decimals, not empty), since a number cut
    short (229.9 -> 22) would otherwise read as a valid value.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise InputError(path, f"unreadable CSV: {type(e).__name__}: {e}") from e
    lines = text.splitlines()
    n_fields = lines[0].count(",") + 1 if lines else 0
    for i, line in enumerate(lines[1:], start=2):
        if line.strip() and line.count(",") + 1 != n_fields:
            raise InputError(
                path,
                f"truncated CSV: line {i} has {line.count(',') + 1} fields, the header {n_fields}",
                kind="malformed_csv",
            )
    if len(lines) > 2 and not text.endswith(("\n", "\r")) and _cut(lines[-2], lines[-1]):
        raise InputError(
            path,
            f"truncated CSV: the last row (line {len(lines)}) ends without a line end in a value "
            f"written unlike the row before ({lines[-1].rsplit(',', 1)[-1].strip()!r}); the "
            "file was cut",
            kind="malformed_csv",
        )


def _cut(previous: str, last: str) -> bool:
    """True when the last field of ``last`` is empty or has other decimals than ``previous``'s."""
    a, b = (line.rsplit(",", 1)[-1].strip() for line in (previous, last))

    def decimals(v: str) -> int:
        return len(v.split(".", 1)[1]) if "." in v else -1

    return not b or decimals(a) != decimals(b)


def _check_finite(table: pd.DataFrame, path: Path) -> None:
    """InputError (kind ``non_finite_landmarks``) naming the first NaN or infinite value."""
    values = table.to_numpy(np.float64)  # (F, C)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        raise InputError(
            path,
            f"non-finite value {values[row, col]} in column {table.columns[col]!r} at line "
            f"{row + 2} ({int(bad.any(axis=1).sum())} of {len(values)} rows affected)",
            kind="non_finite_landmarks",
        )


def _select_face(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Keep one face: the one with the most usable frames, reindexed on all timestamps."""
    if "face_id" not in table.columns or table["face_id"].nunique(dropna=True) <= 1:
        return table.reset_index(drop=True)
    usable = table.groupby("face_id")["ok"].sum()
    best = usable.index[usable.to_numpy() == usable.max()].min()  # ties: lowest id
    log.info(
        "%s: %d faces (usable frames %s); keeping face_id %s",
        path,
        len(usable),
        usable.to_dict(),
        best,
    )
    face = table[table["face_id"] == best]
    if face["timestamp"].duplicated().any():
        raise InputError(path, f"timestamps not increasing: repeated within face_id {best}")
    grid = np.unique(table["timestamp"].to_numpy(np.float64))
    face = face.set_index("timestamp").reindex(grid)
    face["ok"] = face["ok"].fillna(False).astype(bool)
    return face.rename_axis("timestamp").reset_index()


def _check_time(time: np.ndarray, path: Path) -> None:
    """Raise InputError unless timestamps are finite and strictly increasing."""
    if not np.isfinite(time).all():
        row = int(np.argmax(~np.isfinite(time))) + 1
        raise InputError(path, f"timestamps not increasing: non-finite value at row {row}")
    steps = np.diff(time)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0))
        raise InputError(
            path,
            f"timestamps not increasing: row {i + 1} ({time[i]}) -> row {i + 2} ({time[i + 1]})",
        )


def _pupils(table: pd.DataFrame, ok: np.ndarray) -> np.ndarray | None:
    """Pupil centres (F, 2, 2) from eye_lmk iris points 0-7 and 28-35, or None if absent."""
    if any(c not in table.columns for c in PUPIL_COLUMNS):
        return None
    eyes = [
        np.stack(
            [table[[f"eye_lmk_{a}_{i}" for i in idx]].to_numpy(np.float64).mean(1) for a in "xy"],
            axis=-1,
        )  # (F, 2)
        for idx in (LEFT_PUPIL, RIGHT_PUPIL)
    ]
    pupils = np.stack(eyes, axis=1)  # (F, 2, 2)
    pupils[~ok] = np.nan
    return pupils


_XY = tuple(f"{a}_{i}" for a in "xy" for i in range(N_POINTS))
CSV_COLUMNS = ("frame", "timestamp", "confidence", "success", *_XY)  # the 2.0 and dlib layouts
CSV_COLUMNS_22 = ("frame", "face_id", "timestamp", "confidence", "success", *_XY)
_POINTS_22 = ", ".join(["%.1f"] * 2 * N_POINTS)
#: layout -> (columns, row format of (frame, timestamp, confidence, success, 136 points)).
LAYOUTS: dict[str, tuple[tuple[str, ...], str]] = {
    "2.2": (CSV_COLUMNS_22, "%d, 0, %.3f, %.2f, %d, " + _POINTS_22),
    "2.0": (CSV_COLUMNS, "%d,%g,%g,%d," + ",".join(["%.3f"] * 2 * N_POINTS)),
    "dlib": (CSV_COLUMNS, ", ".join(["%d", "%.6f", "%.4f", "%d"] + ["%.3f"] * 2 * N_POINTS)),
}


def write_openface(
    path: str | Path,
    timestamps: np.ndarray,
    confidence: np.ndarray,
    success: np.ndarray,
    points: np.ndarray,
    layout: str,
) -> Path:
    """Write an OpenFace CSV of landmarks ``points`` (F, 68, 2) in pixels (layouts: module doc).

    Frames are numbered from 1. Layout "2.0" rounds times to 3 and confidences to 6 decimals.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"OpenFace layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    columns, fmt = LAYOUTS[layout]
    if layout == "2.0":
        timestamps, confidence = np.round(timestamps, 3), np.round(confidence, 6)
    xy = np.concatenate([points[..., 0], points[..., 1]], axis=1)  # (F, 136)
    cols = zip(timestamps.tolist(), confidence.tolist(), success.tolist(), xy.tolist(), strict=True)
    rows = [fmt % (i, t, c, s, *p) for i, (t, c, s, p) in enumerate(cols, start=1)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(", ".join(columns) + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    return path


def write_table(table: np.ndarray, path: str | Path) -> Path:
    """Write a (F, 4 + 136) table (frame, timestamp, confidence, success, x, y) as a dlib CSV."""
    points = np.stack([table[:, 4 : 4 + N_POINTS], table[:, 4 + N_POINTS :]], axis=-1)
    return write_openface(path, table[:, 1], table[:, 2], table[:, 3], points, "dlib")


def face_counts(csv: str | Path) -> tuple[int, int]:
    """(frames, frames with a face) of an OpenFace CSV."""
    success = pd.read_csv(csv, skipinitialspace=True, usecols=["success"])["success"]
    return len(success), int((success == 1).sum())
