"""Train outputs read by evaluate: each method's runs.csv and its predictions files.

Each train stage ``train@<method>`` writes ``<train_dir>/<method>/runs.csv``: one row per
(trained model, target it is tested on), with :data:`RUN_COLUMNS` and the predictions path
relative to the method's folder. predictions_<target>.csv: utt_id, true, pred, prob_<emotion>
per emotion (rounded to 6 decimals), one row per target test utterance.
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


def _read_method_runs(train_dir: Path, method: str) -> pd.DataFrame:
    """One method stage's runs.csv with its prediction paths made relative to ``train_dir``."""
    path = train_dir / method / "runs.csv"
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file; run the train@{method} stage first")
    runs = pd.read_csv(path, keep_default_na=False, dtype={"seed": int})
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}")
    runs["oracle"] = runs["oracle"].astype(str).str.lower() == "true"
    runs["predictions"] = [f"{method}/{p}" if p else p for p in runs["predictions"]]
    failed = runs[runs["status"] != "FINISHED"]
    if len(failed):  # never dropped silently: Table II would compare different seed sets
        first = failed.iloc[0]
        raise DataError(
            f"{path}: {len(failed)} run(s) did not finish (e.g. {first['direction']} seed "
            f"{first['seed']}: {first['status']}); re-run the train@{method} stage"
        )
    return runs


def load_runs(train_dir: Path, methods: tuple[str, ...]) -> pd.DataFrame:
    """The finished runs of ``methods`` from each method's ``<train_dir>/<method>/runs.csv``.

    upper_bound rows come from source_only's runs.csv (the same models); failed runs are left
    out with a warning. Prediction paths are returned relative to ``train_dir``.
    """
    trained = list(dict.fromkeys("source_only" if m == "upper_bound" else m for m in methods))
    frames = [_read_method_runs(train_dir, m) for m in trained]
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[runs["method"].isin(methods)].reset_index(drop=True)
    if runs.empty:
        raise DataError(f"{train_dir}: no finished run of {list(methods)} to evaluate")
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
