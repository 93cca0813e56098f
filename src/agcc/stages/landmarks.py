"""Stage ``landmarks``: OpenFace CSVs -> eye-normalised outer-mouth tracks (paper Sec. II-B).

Reads OpenFace 2.x FeatureExtraction CSVs (old and new headers), marks failed or low-confidence
frames as missing, normalises the 68 points by the eyes (translate to the eye midpoint, rotate
the eye line to horizontal, divide by the inter-eye distance), keeps the twelve outer-mouth
points 48-59 and fills short gaps. All utterances of a corpus go into one ``mouth.npz``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from agcc import tracking
from agcc.params import BaseParams, LandmarkParams
from agcc.skips import InputError, SkipReport

log = logging.getLogger(__name__)

N_POINTS = 68
MOUTH = tuple(range(48, 60))  # outer lip contour
LEFT_EYE = tuple(range(36, 42))  # image-left eye (the subject's right eye)
RIGHT_EYE = tuple(range(42, 48))
# OpenFace's ``left_eye_28`` part (eye_lmk 0-27) is fitted on points 36-41; its first eight
# points are the iris contour, whose mean OpenFace itself uses as the pupil.
LEFT_PUPIL = tuple(range(0, 8))
RIGHT_PUPIL = tuple(range(28, 36))
POINT_COLUMNS = tuple(f"{a}_{i}" for a in "xy" for i in range(N_POINTS))
REQUIRED_COLUMNS = ("timestamp", "success", "confidence", *POINT_COLUMNS)
PUPIL_COLUMNS = tuple(f"eye_lmk_{a}_{i}" for a in "xy" for i in (*LEFT_PUPIL, *RIGHT_PUPIL))
MANIFEST_COLUMNS = ("utt_id", "landmarks")


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


# ---------------------------------------------------------------------------------------------
# Reading OpenFace CSVs


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
        return table.apply(pd.to_numeric)
    except (ValueError, TypeError) as e:
        raise InputError(path, f"unreadable CSV: non-numeric value ({e})") from e


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


# ---------------------------------------------------------------------------------------------
# Normalisation


def eye_centres(track: LandmarkTrack) -> np.ndarray:
    """Eye centres (F, 2, 2), index 0 the image-left eye: pupils if present, else eye means.

    Without pupils: left = mean of points 36-41, right = mean of points 42-47.
    """
    if track.pupils is not None:
        return track.pupils
    left = track.points[:, LEFT_EYE].mean(axis=1)  # (F, 2)
    right = track.points[:, RIGHT_EYE].mean(axis=1)
    return np.stack([left, right], axis=1)  # (F, 2, 2)


def normalise_points(points: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """Map points into the eye frame: eye midpoint at 0, eye line on +x, eye distance 1.

    With e_L = eyes[:, 0], e_R = eyes[:, 1], m = (e_L + e_R) / 2, d = e_R - e_L and q = p - m:

        x' = (q . d) / |d|^2,    y' = (q_y d_x - q_x d_y) / |d|^2

    i.e. translate by -m, rotate by -atan2(d_y, d_x), scale by 1 / |d|. The map is a proper
    similarity (no reflection), so image coordinates keep their convention: y grows downwards
    and the mouth lies at positive y'; the eyes land on (-0.5, 0) and (0.5, 0). Frames whose
    eyes are missing or coincide give NaN.

    Args:
        points: (F, P, 2) image coordinates.
        eyes: (F, 2, 2) eye centres (index 0 = image-left eye) in the same coordinates.

    Returns:
        (F, P, 2) normalised coordinates, float64.
    """
    points = np.asarray(points, dtype=np.float64)
    eyes = np.asarray(eyes, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] != 2 or eyes.shape != (points.shape[0], 2, 2):
        raise ValueError(
            f"expected points (F, P, 2) and eyes (F, 2, 2), got {points.shape} and {eyes.shape}"
        )
    mid = eyes.mean(axis=1, keepdims=True)  # (F, 1, 2)
    d = eyes[:, 1] - eyes[:, 0]  # (F, 2)
    norm2 = (d**2).sum(axis=1)[:, None]  # (F, 1)
    q = points - mid  # (F, P, 2)
    dx, dy = d[:, None, 0], d[:, None, 1]  # (F, 1) each
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (q[..., 0] * dx + q[..., 1] * dy) / norm2
        y = (q[..., 1] * dx - q[..., 0] * dy) / norm2
    return np.stack([x, y], axis=-1)  # (F, P, 2)


def normalise_mouth(points: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """Outer-mouth points 48-59 (F, 12, 2) in the eye frame of ``normalise_points``.

    Args:
        points: (F, 68, 2) image coordinates (y down).
        eyes: (F, 2, 2) eye centres, index 0 = image-left eye.

    Returns:
        (F, 12, 2): row k is landmark 48 + k; x along the eye line (image-left eye at
        negative x), y perpendicular to it growing downwards, in inter-eye distances.
    """
    points = np.asarray(points)
    if points.ndim != 3 or points.shape[1:] != (N_POINTS, 2):
        raise ValueError(f"expected points of shape (F, 68, 2), got {points.shape}")
    return normalise_points(points[:, MOUTH], eyes)


def mouth_features(points: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """Flat mouth features (F, 24): x48, y48, x49, y49, ..., x59, y59 (see normalise_mouth)."""
    mouth = normalise_mouth(points, eyes)  # (F, 12, 2)
    return mouth.reshape(mouth.shape[0], 2 * len(MOUTH))  # (F, 24)


def mouth_column(point: int, axis: Literal["x", "y"]) -> int:
    """Column of landmark ``point`` (48-59) and ``axis`` in ``mouth_features``' (F, 24) output."""
    if point not in MOUTH or axis not in ("x", "y"):
        raise ValueError(f"point must be in 48..59 and axis 'x' or 'y', got {point!r}, {axis!r}")
    return 2 * (point - MOUTH[0]) + (axis == "y")


# ---------------------------------------------------------------------------------------------
# Gaps


def interpolate_gaps(time: np.ndarray, values: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """Fill interior NaN runs of at most ``max_gap_frames`` frames linearly in time.

    For a run of missing frames between valid frames a and b, each column gets
    v(t) = v_a + (v_b - v_a) (t - t_a) / (t_b - t_a). Longer runs and runs touching the first
    or last frame stay NaN. Columns are treated independently.

    Args:
        time: (F,) increasing times.
        values: (F, D) values with NaN for missing entries.
        max_gap_frames: longest run that is filled (0 fills nothing).

    Returns:
        (F, D) float64 copy of ``values`` with the short gaps filled.
    """
    time = np.asarray(time, dtype=np.float64)
    out = np.array(values, dtype=np.float64, copy=True)
    if out.ndim != 2 or time.shape != (out.shape[0],):
        raise ValueError(f"expected time (F,) and values (F, D), got {time.shape}, {out.shape}")
    if max_gap_frames <= 0:
        return out
    for col in out.T:  # views: writes go into out
        missing = np.isnan(col)
        fill = _short_interior_runs(missing, max_gap_frames)
        if fill.any():
            col[fill] = np.interp(time[fill], time[~missing], col[~missing])
    return out


def _short_interior_runs(mask: np.ndarray, max_len: int) -> np.ndarray:
    """Boolean mask of the True runs of ``mask`` that are interior and at most max_len long."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # ends exclusive
    keep = (starts > 0) & (ends < len(mask)) & (ends - starts <= max_len)
    out = np.zeros(len(mask), dtype=bool)
    for s, e in zip(starts[keep], ends[keep], strict=True):
        out[s:e] = True
    return out


# ---------------------------------------------------------------------------------------------
# The stage


@dataclass
class _Utterance:
    """One kept utterance's mouth track and its missing-frame counts."""

    utt_id: str
    time: np.ndarray
    mouth: np.ndarray
    missing_before: int
    missing_after: int


def run(
    name: str,
    manifest: Path,
    lp: LandmarkParams,
    base: BaseParams,
    out_dir: Path,
    source: Literal["openface_csv", "dlib"] = "openface_csv",
) -> None:
    """Read every manifest row's landmark CSV and write ``out_dir/mouth.npz`` plus metrics.

    With ``source="dlib"`` the CSVs are first extracted from the manifest's ``video`` column by
    the built-in dlib extractor (``agcc.extract.face``) into ``out_dir/openface_cache`` (kept
    between runs, so an interrupted extraction resumes) and read from there.

    The manifest needs ``utt_id`` and ``landmarks`` columns; relative CSV paths are taken from
    the working directory (the repository root under ``dvc repro``). ``mouth.npz`` holds
    ``utt_id`` (N,), ``offsets`` (N+1,) int64, ``time`` (F,) float64 and ``mouth`` (F, 24)
    float32 (column order of ``mouth_features``, NaN where still missing); utterance i spans
    rows offsets[i]:offsets[i+1]. Unusable rows go to ``skips.csv`` with file and reason.
    """
    out_dir = Path(out_dir)
    rows = _read_manifest(Path(manifest))
    log.info("landmarks %s: %d utterances listed in %s", name, len(rows), manifest)
    params = {"landmarks": lp.model_dump(), "max_skip_share": base.max_skip_share}
    with tracking.corpus_stage_run(
        "landmarks", name, params, out_dir, base.max_skip_share
    ) as stage:
        stage.skips.n_seen = len(rows)
        if source == "dlib":
            from agcc.extract import face  # dlib and PyAV only when the corpus uses them

            cache = out_dir / "openface_cache"
            rows, counts = face.extract_manifest(Path(manifest), cache, lp, stage.skips, name)
            stage.metrics |= counts
        kept = _read_all(name, rows, lp, stage.skips)
        log.info("landmarks %s: kept %d, skipped %d", name, len(kept), stage.skips.n_skipped)
        path = _write_npz(out_dir / "mouth.npz", kept)
        log.info("landmarks %s: wrote %s", name, path)
        stage.metrics |= _metrics(kept)


def _read_manifest(manifest: Path) -> pd.DataFrame:
    """The manifest's utt_id and landmarks columns as strings (empty cell = empty string)."""
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no such manifest")
    rows = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"{manifest}: missing columns {missing}; has {list(rows.columns)}")
    return rows[list(MANIFEST_COLUMNS)]


def _read_all(
    name: str, rows: pd.DataFrame, lp: LandmarkParams, skips: SkipReport
) -> list[_Utterance]:
    """Read each row's CSV (paths relative to the working directory); record skips."""
    kept: list[_Utterance] = []
    seen: set[str] = set()
    for utt_id, csv in tqdm(
        rows.itertuples(index=False, name=None), total=len(rows), desc=f"landmarks {name}"
    ):
        csv = csv.strip()
        if utt_id in seen:
            skips.add(utt_id, csv, "duplicate utt_id: already read from an earlier row")
        elif not csv:
            skips.add(utt_id, "", "no landmark CSV")
        else:
            try:
                kept.append(_read_utterance(utt_id, Path(csv), lp))
            except InputError as e:
                skips.add_error(utt_id, e)
        seen.add(utt_id)
    return kept


def _read_utterance(utt_id: str, path: Path, lp: LandmarkParams) -> _Utterance:
    """Read, normalise and gap-fill one utterance's mouth track."""
    track = read_openface_csv(path, lp.min_confidence)
    mouth = mouth_features(track.points, eye_centres(track))  # (F, 24)
    before = int(np.isnan(mouth).any(axis=1).sum())
    if before == len(mouth):
        raise InputError(path, "no usable mouth frames: eye centres missing or coincident")
    mouth = interpolate_gaps(track.time, mouth, lp.max_gap_frames)
    after = int(np.isnan(mouth).any(axis=1).sum())
    return _Utterance(utt_id, track.time, mouth.astype(np.float32), before, after)


def _write_npz(path: Path, utts: list[_Utterance]) -> Path:
    """Write utt_id (N,), offsets (N+1,), time (F,), mouth (F, 24) float32 to one npz."""
    lengths = [len(u.time) for u in utts]
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    time = np.concatenate([u.time for u in utts]) if utts else np.zeros(0)
    mouth = np.concatenate([u.mouth for u in utts]) if utts else np.zeros((0, 2 * len(MOUTH)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:  # written then renamed, so a crash leaves no half file
        np.savez_compressed(
            f,
            utt_id=np.array([u.utt_id for u in utts], dtype=str),
            offsets=offsets,
            time=time.astype(np.float64),
            mouth=mouth.astype(np.float32),
        )
    tmp.replace(path)
    return path


def _metrics(utts: list[_Utterance]) -> dict[str, float]:
    """Kept utterances, frames, missing-frame shares before/after interpolation, mean fps."""
    frames = sum(len(u.time) for u in utts)
    rates = [fps(u.time) for u in utts if len(u.time) > 1]
    return {
        "utterances_kept": len(utts),
        "frames": frames,
        "missing_share_before": sum(u.missing_before for u in utts) / frames if frames else 0.0,
        "missing_share_after": sum(u.missing_after for u in utts) / frames if frames else 0.0,
        "mean_fps": float(np.mean(rates)) if rates else 0.0,
    }


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


def fps(time: np.ndarray) -> float:
    """Frame rate over the whole track, (F - 1) / duration (NaN for fewer than two frames).

    Robust to timestamps rounded to milliseconds (OpenFace writes 0.033, 0.067, ...), which
    would bias a median-step estimate (1 / 0.033 = 30.3 for 30 fps video).
    """
    if len(time) < 2 or time[-1] <= time[0]:
        return math.nan
    return (len(time) - 1) / float(time[-1] - time[0])
