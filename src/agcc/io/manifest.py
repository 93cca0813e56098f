"""manifest.csv of the prepare stage (align adds TextGrid paths): one row per utterance.

Every cell is text (utt ids such as ``1001`` stay strings, empty cells stay ""), columns
:data:`MANIFEST_COLUMNS` in that order. Written through a temporary file and a rename.

Spreadsheet safety: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return (a formula when the CSV is opened in a spreadsheet) is written with a leading apostrophe
(``'=1+2``); :func:`read_manifest` removes it again, so the round trip is exact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from agcc.errors import DataError, MissingInputError
from agcc.skips import FORMULA_START, neutralise

MANIFEST_COLUMNS = (
    "utt_id",
    "corpus",
    "speaker",
    "gender",
    "session",
    "sentence",
    "emotion",
    "split",
    "audio",
    "video",
    "landmarks",
    "textgrid",
    "transcript",
)


def read_manifest(path: str | Path, required: Sequence[str] = MANIFEST_COLUMNS) -> pd.DataFrame:
    """Read a manifest.csv, every column as text (no NaN); the ``required`` columns must exist.

    When ``video`` is required, manifests written before that column existed get an empty one.
    Raises MissingInputError (a FileNotFoundError) or DataError (a ValueError) naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such manifest")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False).map(_restore)
    if "video" in required and "video" not in frame.columns and "audio" in frame.columns:
        frame.insert(frame.columns.get_loc("audio") + 1, "video", "")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: not a manifest, missing columns {missing}; has {list(frame.columns)}"
        )
    return frame


def write_manifest(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as a manifest CSV (no index) through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.map(lambda v: neutralise(v) if isinstance(v, str) else v).to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def _restore(value: str) -> str:
    """Undo :func:`neutralise` on a cell read back."""
    if value.startswith("'") and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value
