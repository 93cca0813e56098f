"""Stage ``landmarks``: OpenFace CSVs -> eye-normalised outer-mouth tracks (paper Sec. II-B).

Reads OpenFace 2.x FeatureExtraction CSVs (old and new headers, :mod:`agcc.io.openface`), marks
failed or low-confidence frames as missing, normalises the 68 points by the eyes (translate to
the eye midpoint, rotate the eye line to horizontal, divide by the inter-eye distance), keeps the
twelve outer-mouth points 48-59 and fills short gaps (:mod:`agcc.mouth`). All utterances of a
corpus go into one ``mouth.npz`` (:mod:`agcc.io.mouth`).
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
from agcc.io.manifest import read_manifest
from agcc.io.mouth import write_mouth
from agcc.io.openface import read_openface_csv
from agcc.mouth import eye_centres, fps, interpolate_gaps, mouth_features
from agcc.params import BaseParams, LandmarkParams
from agcc.skips import InputError, SkipReport

log = logging.getLogger(__name__)

#: Manifest columns the stage reads.
LANDMARKS_INPUT = ("utt_id", "landmarks")


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
    Audio-only clips (no video and no landmark CSV) are absent by design: counted in one line
    and in ``absent.audio_only``, not skipped. ``mouth.npz`` is written (through a temporary file
    and a rename) only when the skip share is within ``base.max_skip_share``; an earlier one is
    removed first, so a failed run leaves no finished-looking output. OpenFace CSV times (0 at
    the first frame) are shifted by the delay of the row's video after its audio
    (:func:`video_delays`), as the dlib extractor's already are.
    """
    out_dir = Path(out_dir)
    table = read_manifest(manifest, required=LANDMARKS_INPUT)
    if "video" not in table.columns:
        table["video"] = ""
    rows, n_absent = _with_visual_input(table, source, name)
    log.info("landmarks %s: %d utterances listed in %s", name, len(table), manifest)
    params = {"landmarks": lp.model_dump(), "max_skip_share": base.max_skip_share}
    final = out_dir / "mouth.npz"
    final.unlink(missing_ok=True)  # no finished-looking output from an earlier run on failure
    with tracking.corpus_stage_run(
        "landmarks", name, params, out_dir, base.max_skip_share
    ) as stage:
        stage.skips.n_seen = len(rows)
        stage.metrics["absent.audio_only"] = n_absent
        if source == "dlib":
            from agcc.extract import face  # dlib and PyAV only when the corpus uses them

            cache = out_dir / "openface_cache"
            rows, counts = face.extract_rows(rows, cache, lp, stage.skips, name)
            stage.metrics |= counts
            delays: dict[str, float] = {}  # the extractor's times are on the audio's clock
        else:
            delays = video_delays(rows, name)
            stage.metrics["videos_delayed"] = sum(d != 0.0 for d in delays.values())
        kept = _read_all(name, rows[list(LANDMARKS_INPUT)], lp, stage.skips, delays)
        log.info("landmarks %s: kept %d, skipped %d", name, len(kept), stage.skips.n_skipped)
        stage.skips.check(base.max_skip_share)  # before mouth.npz exists (written atomically)
        write_mouth(
            final, [u.utt_id for u in kept], [u.time for u in kept], [u.mouth for u in kept]
        )
        log.info("landmarks %s: wrote %s", name, final)
        stage.metrics |= _metrics(kept)
        stage.headline["utterances"] = len(kept)


def _with_visual_input(table: pd.DataFrame, source: str, name: str) -> tuple[pd.DataFrame, int]:
    """Rows that have a video (dlib) or a landmark CSV or video (OpenFace), and the others' count.

    The others are audio-only clips, absent by design: one summary line, not a skip each.
    """
    table = table.map(str.strip)
    has = table["video"] != ""
    if source != "dlib":
        has |= table["landmarks"] != ""
    absent = table.loc[~has, "utt_id"].tolist()
    if absent:
        what = "no video" if source == "dlib" else "no video and no landmark CSV"
        log.info(
            "landmarks %s: %d audio-only clips (%s; absent by design, not skips): %s%s",
            name,
            len(absent),
            what,
            ", ".join(absent[:5]),
            ", ..." if len(absent) > 5 else "",
        )
    return table[has].reset_index(drop=True), len(absent)


def video_delays(rows: pd.DataFrame, name: str) -> dict[str, float]:
    """utt_id -> delay (s) of the first video frame after the audio's start, for OpenFace CSVs.

    OpenFace's timestamps start at 0 at the first frame; CREMA-D's .flv start their video about
    27 ms after their audio. Rows without a video keep 0; an unreadable video too (warned).
    """
    with_video = rows[rows["video"] != ""]
    if with_video.empty:
        return {}
    from agcc.extract import face  # PyAV only when the manifest lists videos

    delays: dict[str, float] = {}
    for utt_id, video in zip(with_video["utt_id"], with_video["video"], strict=True):
        try:
            delays[utt_id] = face.video_delay(Path(video))
        except InputError as e:
            log.warning("landmarks %s: %s; timestamps of %s left as in its CSV", name, e, utt_id)
    shifted = [d for d in delays.values() if d]
    log.info(
        "landmarks %s: %d of %d videos start after their audio (mean %.1f ms): CSV times shifted",
        name,
        len(shifted),
        len(with_video),
        1000 * float(np.mean(shifted)) if shifted else 0.0,
    )
    return delays


def _read_all(
    name: str,
    rows: pd.DataFrame,
    lp: LandmarkParams,
    skips: SkipReport,
    delays: dict[str, float] | None = None,
) -> list[_Utterance]:
    """Read each row's CSV (paths relative to the working directory), times shifted by the
    utterance's video delay; record skips."""
    delays = delays or {}
    kept: list[_Utterance] = []
    seen: set[str] = set()
    for utt_id, csv in tqdm(
        rows.itertuples(index=False, name=None), total=len(rows), desc=f"landmarks {name}"
    ):
        csv = csv.strip()
        if utt_id in seen:
            skips.add(utt_id, csv, "duplicate utt_id: already read from an earlier row")
        elif not csv:
            skips.add(utt_id, "", "no landmark CSV: empty landmarks cell")
        else:
            try:
                kept.append(_read_utterance(utt_id, Path(csv), lp, delays.get(utt_id, 0.0)))
            except InputError as e:
                skips.add_error(utt_id, e)
        seen.add(utt_id)
    return kept


def _read_utterance(utt_id: str, path: Path, lp: LandmarkParams, delay: float = 0.0) -> _Utterance:
    """Read, normalise and gap-fill one utterance's mouth track; times shifted by ``delay``."""
    track = read_openface_csv(path, lp.min_confidence)
    mouth = mouth_features(track.points, eye_centres(track.points, track.pupils))  # (F, 24)
    before = int(np.isnan(mouth).any(axis=1).sum())
    if before == len(mouth):
        raise InputError(path, "no usable mouth frames: eye centres missing or coincident")
    mouth = interpolate_gaps(track.time, mouth, lp.max_gap_frames)
    after = int(np.isnan(mouth).any(axis=1).sum())
    return _Utterance(utt_id, track.time + delay, mouth.astype(np.float32), before, after)


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
