"""File writers for the two corpus layouts (wav, OpenFace CSV, MFA TextGrid, label files)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from praatio import textgrid
from praatio.utilities.constants import Interval

_XY = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
OPENFACE_22_HEADER = ", ".join(["frame", "face_id", "timestamp", "confidence", "success", *_XY])
OPENFACE_20_HEADER = ", ".join(["frame", "timestamp", "confidence", "success", *_XY])
SUMMARY_HEADER = (
    "",
    "FileName",
    "VoiceVote",
    "VoiceLevel",
    "FaceVote",
    "FaceLevel",
    "MultiModalVote",
    "MultiModalLevel",
)


def write_wav(path: Path, pcm: np.ndarray, sr: int) -> None:
    """Mono PCM_16 wav."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, pcm, sr, subtype="PCM_16")


def write_openface(
    path: Path,
    timestamps: np.ndarray,
    confidence: np.ndarray,
    success: np.ndarray,
    points: np.ndarray,
    version: str,
) -> None:
    """An OpenFace FeatureExtraction CSV with landmarks ``points`` (F, 68, 2) in pixels.

    ``version="2.2"``: ``frame, face_id, timestamp, ...`` with ", " between values as OpenFace 2.2
    writes them; ``version="2.0"``: the older header without ``face_id`` and compact values.
    """
    xy = np.concatenate([points[..., 0], points[..., 1]], axis=1)  # (F, 136)
    if version == "2.2":
        header, fmt = OPENFACE_22_HEADER, "%d, 0, %.3f, %.2f, %d, " + ", ".join(["%.1f"] * 136)
        times, confs = timestamps.tolist(), confidence.tolist()
    elif version == "2.0":
        header, fmt = OPENFACE_20_HEADER, "%d,%g,%g,%d," + ",".join(["%.3f"] * 136)
        times, confs = np.round(timestamps, 3).tolist(), np.round(confidence, 6).tolist()
    else:
        raise ValueError(f"OpenFace layout version must be '2.2' or '2.0', got {version!r}")
    cols = zip(times, confs, success.tolist(), xy.tolist(), strict=True)
    rows = [fmt % (i, t, c, s, *p) for i, (t, c, s, p) in enumerate(cols, start=1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


def write_textgrid(
    path: Path,
    words: Sequence[tuple[float, float, str]],
    phones: Sequence[tuple[float, float, str]],
    duration: float,
) -> None:
    """MFA-layout TextGrid (praat long text): tiers ``words`` then ``phones``, gaps = silence."""
    tg = textgrid.Textgrid()
    for name, entries in (("words", words), ("phones", phones)):
        tier = [Interval(s, e, label) for s, e, label in entries]
        tg.addTier(textgrid.IntervalTier(name, tier, 0.0, duration))
    path.parent.mkdir(parents=True, exist_ok=True)
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True)


def write_summary_table(path: Path, rows: Sequence[dict[str, str]]) -> None:
    """CREMA-D summaryTable.csv: every cell quoted, a 1-based row number in the first column."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(SUMMARY_HEADER)
        for i, r in enumerate(rows, start=1):
            w.writerow([str(i), *(r[c] for c in SUMMARY_HEADER[1:])])


def write_demographics(path: Path, rows: Sequence[tuple[int, int, str, str, str]]) -> None:
    """CREMA-D VideoDemographics.csv: numbers bare, text quoted, as in the real file."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        w.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
        w.writerows(rows)


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """A text file from lines (each ends with a newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_truth(path: Path, table: pd.DataFrame) -> None:
    """demo_truth.csv with a fixed float format, so equal tables give equal bytes."""
    table.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
