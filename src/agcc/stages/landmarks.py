"""Stage ``landmarks``: OpenFace CSVs -> eye-normalised outer-mouth tracks (paper Sec. II-B).

Reads OpenFace 2.x FeatureExtraction CSVs (old and new headers), marks failed or low-confidence
frames as missing, normalises the 68 points by the eyes (translate to the eye midpoint, rotate
the eye line to horizontal, divide by the inter-eye distance), keeps the twelve outer-mouth
points 48-59 and fills short gaps. All utterances of a corpus go into one ``mouth.npz``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from agcc import tracking
from agcc.mouth import LEFT_EYE, MOUTH, N_POINTS, RIGHT_EYE, fps, interpolate_gaps, mouth_features
from agcc.params import BaseParams, LandmarkParams
from agcc.skips import InputError, SkipReport

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------------------------
# Gaps


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
