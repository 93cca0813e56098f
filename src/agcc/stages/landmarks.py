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
    """
    out_dir = Path(out_dir)
    rows = read_manifest(manifest, required=LANDMARKS_INPUT)[list(LANDMARKS_INPUT)]
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
        path = write_mouth(
            out_dir / "mouth.npz",
            [u.utt_id for u in kept],
            [u.time for u in kept],
            [u.mouth for u in kept],
        )
        log.info("landmarks %s: wrote %s", name, path)
        stage.metrics |= _metrics(kept)
        stage.headline["utterances"] = len(kept)


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
    mouth = mouth_features(track.points, eye_centres(track.points, track.pupils))  # (F, 24)
    before = int(np.isnan(mouth).any(axis=1).sum())
    if before == len(mouth):
        raise InputError(path, "no usable mouth frames: eye centres missing or coincident")
    mouth = interpolate_gaps(track.time, mouth, lp.max_gap_frames)
    after = int(np.isnan(mouth).any(axis=1).sum())
    return _Utterance(utt_id, track.time, mouth.astype(np.float32), before, after)


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
