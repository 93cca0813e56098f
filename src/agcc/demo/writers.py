"""File writers for the two corpus layouts: wav and label files.

OpenFace CSVs and MFA TextGrids are written by :mod:`agcc.io.openface` and :mod:`agcc.io.textgrid`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

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
