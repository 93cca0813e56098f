"""Generic adapter: any audio-visual corpus described by a manifest CSV.

Required columns: ``utt_id, speaker, emotion, audio``; optional: ``session, gender, sentence,
video, landmarks, textgrid, transcript``. Relative paths are taken relative to the CSV's
folder, and must lie below the corpus ``root`` (``allow_outside_root: true`` allows others).
Emotions may be full names (``anger``), adjectives (``angry``) or the usual short codes
(``ang``, ``a``); anything else is an out-of-class label, dropped and counted. Without
``manifest_csv`` in the corpus settings the file ``<root>/manifest.csv`` is read.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from agcc.corpora.base import EMOTION_ALIASES, Absent, LayoutError, Row
from agcc.errors import DataError
from agcc.params import CorpusParams
from agcc.skips import SkipReport

log = logging.getLogger(__name__)

REQUIRED = ("utt_id", "speaker", "emotion", "audio")
OPTIONAL = ("session", "gender", "sentence", "video", "landmarks", "textgrid", "transcript")
PATH_COLUMNS = ("audio", "video", "landmarks", "textgrid")
OTHER_LABELS = {
    "dis": "disgust",
    "fea": "fear",
    "sur": "surprise",
    "o": "other (O)",
    "x": "no agreement (X)",
}


def manifest_path(cp: CorpusParams) -> Path:
    """The manifest CSV of a corpus: ``manifest_csv`` when set, else ``<root>/manifest.csv``."""
    return Path(cp.manifest_csv) if cp.manifest_csv else Path(cp.root) / "manifest.csv"


def read(
    cp: CorpusParams, skips: SkipReport, absent: Absent | None = None
) -> tuple[list[Row], Counter[str]]:
    """Rows of the kept utterances and the counts of dropped labels from a manifest CSV.

    Path cells must lie below ``root`` unless the corpus sets ``allow_outside_root``.
    """
    path = manifest_path(cp)
    table = load_table(path)
    if not cp.allow_outside_root:
        check_inside_root(table, path, Path(cp.root))
    rows: list[Row] = []
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    records = table.to_dict("records")
    for i, rec in enumerate(tqdm(records, desc="manifest", leave=False, disable=None), start=2):
        where = f"{path}:{i}"
        row = {k: _resolve(path, v) if k in PATH_COLUMNS else v for k, v in rec.items()}
        utt, emotion = row["utt_id"], row["emotion"].lower()
        reason = _problem(row, seen)
        if reason:
            skips.add(utt or f"line {i}", where, reason)
        elif emotion in EMOTION_ALIASES:
            rows.append(row | {"emotion": EMOTION_ALIASES[emotion]})
        else:
            dropped[OTHER_LABELS.get(emotion, emotion)] += 1
        seen.add(utt)
    return rows, dropped


def load_table(path: Path) -> pd.DataFrame:
    """The manifest CSV as text cells; LayoutError when absent, unreadable or missing a column."""
    if not path.is_file():
        raise LayoutError(f"{path}: manifest CSV not found (set manifest_csv for this corpus)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise LayoutError(f"{path}: unreadable manifest CSV: {e}") from e
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise LayoutError(
            f"{path}: manifest CSV lacks required column(s) {missing}; has {list(table.columns)}"
        )
    extra = [c for c in table.columns if c not in REQUIRED + OPTIONAL]
    if extra:
        log.info("%s: ignoring columns %s", path, extra)
    keep = [c for c in REQUIRED + OPTIONAL if c in table.columns]
    return table[keep].apply(lambda col: col.str.strip())


def video_hint(cp: CorpusParams) -> str:
    """Where an utterance's video is looked for (for messages)."""
    return f"the video column of {manifest_path(cp)} (empty cell)"


def check_inside_root(table: pd.DataFrame, path: Path, root: Path) -> None:
    """DataError naming the cells whose path (relative to the CSV) is outside ``root``."""
    base = root.resolve()
    bad = []
    for col in (c for c in PATH_COLUMNS if c in table.columns):
        for i, value in enumerate(table[col], start=2):
            target = Path(_resolve(path, value)).resolve() if value else base
            if not target.is_relative_to(base):
                bad.append(f"line {i} {col} {value!r}")
    if bad:
        raise DataError(
            f"{path}: {len(bad)} path(s) outside the corpus root {root}: {'; '.join(bad[:3])}"
            + ("; ..." if len(bad) > 3 else "")
            + " (set allow_outside_root: true in this corpus's params to allow them)"
        )


def _resolve(csv_path: Path, value: str) -> str:
    """A path cell relative to the CSV's folder (absolute paths kept); empty stays empty."""
    return str(csv_path.parent / value) if value else ""


def _problem(row: Row, seen: set[str]) -> str:
    """Why a manifest row cannot be used, or "" when it can."""
    if not row["utt_id"]:
        return "no utt_id: empty utt_id cell"
    if row["utt_id"] in seen:
        return f"duplicate utt_id {row['utt_id']!r}: kept the first row"
    if not row["speaker"]:
        return "no speaker: empty speaker cell"
    if not row["emotion"]:
        return "no label: empty emotion cell"
    if not row["audio"]:
        return "no audio: empty audio cell"
    if not Path(row["audio"]).is_file():
        return f"label without audio file: {row['audio']} does not exist"
    return ""
