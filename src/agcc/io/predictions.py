"""Train outputs read by evaluate: runs.csv (one row per training run) and predictions.csv.

predictions.csv: utt_id, true, pred, prob_<emotion> per emotion (rounded to 6 decimals), one row
per target test utterance. A run's folder is <source>_to_<target>/<method>[_ORACLE]/seed<k>.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from agcc.errors import DataError, MissingInputError

log = logging.getLogger(__name__)

ORACLE_SUFFIX = "_ORACLE"


RUN_COLUMNS = ("direction", "source", "target", "method", "oracle", "seed", "status", "predictions")


def load_runs(train_dir: Path) -> pd.DataFrame:
    """The finished runs of ``runs.csv`` (failed ones are left out with a warning)."""
    path = train_dir / "runs.csv"
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file; run the train stage first")
    runs = pd.read_csv(path, keep_default_na=False, dtype={"seed": int})
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}")
    runs["oracle"] = runs["oracle"].astype(str).str.lower() == "true"
    failed = runs[runs["status"] != "FINISHED"]
    if len(failed):
        log.warning("%s: leaving out %d runs that did not finish", path, len(failed))
    runs = runs[runs["status"] == "FINISHED"].reset_index(drop=True)
    if runs.empty:
        raise DataError(f"{path}: no finished run to evaluate")
    return runs


def read_predictions(path: Path, emotions: tuple[str, ...]) -> pd.DataFrame:
    """predictions.csv sorted by utt_id with integer ``y_true`` and ``y_pred`` columns added."""
    if not path.is_file():
        raise MissingInputError(f"{path}: no such predictions file; re-run the train stage")
    frame = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in ("utt_id", "true", "pred") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}")
    index = {e: i for i, e in enumerate(emotions)}
    unknown = sorted((set(frame["true"]) | set(frame["pred"])) - set(index))
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not in base.emotions {list(emotions)}")
    frame["y_true"], frame["y_pred"] = frame["true"].map(index), frame["pred"].map(index)
    return frame.sort_values("utt_id", kind="stable").reset_index(drop=True)


def method_dir(method: str, oracle: bool) -> str:
    """A method's key: its name, with ``_ORACLE`` when the run used true target labels."""
    return method + (ORACLE_SUFFIX if oracle else "")


def write_predictions(
    path: Path,
    utt_ids: np.ndarray,
    y_true: np.ndarray,
    probs: np.ndarray,
    emotions: tuple[str, ...],
) -> pd.DataFrame:
    """predictions.csv: utt_id, true, pred, then prob_<emotion> per emotion.

    ``y_true`` (N,) holds class indices into ``emotions``, ``probs`` (N, C) the posteriors.
    """
    frame = pd.DataFrame(
        {
            "utt_id": utt_ids,
            "true": np.asarray(emotions)[y_true],
            "pred": np.asarray(emotions)[probs.argmax(axis=1)],
        }
        | {f"prob_{e}": probs[:, i].round(6) for i, e in enumerate(emotions)}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return frame
