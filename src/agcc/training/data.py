"""One corpus's usable utterances, features and clustered segments, checked, in memory.

A segment [seg_start, seg_end) (the span of its mouth segment) uses the feature frames of
:func:`agcc.framing.frame_range`, clipped to its utterance; segments starting after their audio
ends are dropped with a warning. Utterances without features are skipped and counted. The files
are read by :mod:`agcc.io.corpus`; this module only assembles and checks what they hold.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agcc.errors import DataError
from agcc.framing import frame_range
from agcc.params import VOWELS
from agcc.skips import SkipReport

log = logging.getLogger(__name__)


@dataclass
class Segments:
    """Vowel segments of one corpus, sorted by utterance, as frame ranges of its features."""

    seg_id: np.ndarray  # (S,) str
    row: np.ndarray  # (S,) utterance row in the corpus
    lo: np.ndarray  # (S,) first feature frame
    hi: np.ndarray  # (S,) one past the last feature frame
    vowel: np.ndarray  # (S,) index into VOWELS
    cluster: np.ndarray  # (S,) AG cluster id
    ptr: np.ndarray  # (N + 1,) segments of utterance i are ptr[i]:ptr[i + 1]


@dataclass
class CorpusData:
    """One corpus's usable utterances, their features and segments."""

    name: str
    utt_ids: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) emotion index
    splits: np.ndarray  # (N,) str
    start: np.ndarray  # (N,) first row of the utterance in ``frames``
    length: np.ndarray  # (N,) frame count
    frames: np.ndarray  # (F, D) or (F, L, D), float16 as stored
    segments: Segments
    mouth_val: dict[int, list[np.ndarray]]  # vowel index -> val-split mouth series (T, 24)
    features_path: Path
    manifest_path: Path

    def rows(self, split: str) -> np.ndarray:
        """Utterance rows of one split."""
        return np.flatnonzero(self.splits == split)


def binary_view(data: CorpusData, positive: int) -> CorpusData:
    """The corpus with one-vs-rest labels: 1 for emotion index ``positive``, 0 for any other
    (negative labels, unknown ones, stay as they are); the arrays are shared, not copied."""
    labels = np.where(data.labels < 0, data.labels, (data.labels == positive).astype(np.int64))
    return dataclasses.replace(data, labels=labels.astype(data.labels.dtype))


def _usable_utterances(
    manifest: pd.DataFrame, utt_ids: np.ndarray, offsets: np.ndarray, path: Path, skips: SkipReport
) -> tuple[pd.DataFrame, np.ndarray]:
    """Manifest rows with at least one feature frame, and their index in the features file."""
    index = pd.Series(np.arange(len(utt_ids)), index=utt_ids)
    pos = index.reindex(manifest["utt_id"]).to_numpy()
    has = ~np.isnan(pos)
    has[has] = np.diff(offsets)[pos[has].astype(np.int64)] > 0
    skips.n_seen += len(manifest)
    for utt in manifest.loc[~has, "utt_id"]:
        skips.add(utt, path, "no features: the features file has no frames for this utterance")
    return manifest[has].reset_index(drop=True), pos[has].astype(np.int64)


def segment_index(
    table: pd.DataFrame, utts: pd.DataFrame, length: np.ndarray, rate: float, seg_dir: Path
) -> Segments:
    """Segments of the usable utterances as frame ranges, sorted by utterance row."""
    row_of = pd.Series(np.arange(len(utts)), index=utts["utt_id"].to_numpy())
    row = row_of.reindex(table["utt_id"]).to_numpy()
    unknown = sorted(set(table["vowel"]) - set(VOWELS))
    if unknown:
        raise DataError(f"{seg_dir}/segments.csv: unknown vowels {unknown}; expected {VOWELS}")
    keep = ~np.isnan(row)
    t, row = table[keep], row[keep].astype(np.int64)
    lo, hi, inside = frame_range(
        t["seg_start"].to_numpy(float), t["seg_end"].to_numpy(float), length[row], rate
    )
    if not inside.all():
        log.warning(
            "%s: %d segments start after their audio ends; not used", seg_dir, int((~inside).sum())
        )
        t, row, lo, hi = t[inside], row[inside], lo[inside], hi[inside]
    order = np.argsort(row, kind="stable")
    vowel = t["vowel"].map({v: i for i, v in enumerate(VOWELS)}).to_numpy(np.int64)
    return Segments(
        seg_id=t["seg_id"].to_numpy(str)[order],
        row=row[order],
        lo=lo[order],
        hi=hi[order],
        vowel=vowel[order],
        cluster=t["cluster"].to_numpy(np.int64)[order],
        ptr=np.searchsorted(row[order], np.arange(len(utts) + 1)),
    )


def check_segment_utterances(table: pd.DataFrame, manifest: pd.DataFrame, seg_dir: Path) -> None:
    """Every segment must belong to an utterance of the manifest (else the stages are stale)."""
    stray = table.loc[~table["utt_id"].isin(manifest["utt_id"]), "utt_id"]
    if len(stray):
        raise DataError(
            f"{seg_dir}/segments.csv: {stray.nunique()} utterances (e.g. {stray.iloc[0]!r}) are "
            "not in the manifest; re-run the segments stage"
        )


def _mouth_val(table: pd.DataFrame, mouth: list[np.ndarray]) -> dict[int, list[np.ndarray]]:
    """Validation-split mouth series per vowel index (hard_ag's barycentres)."""
    out: dict[int, list[np.ndarray]] = {}
    for i in np.flatnonzero(table["split"].to_numpy() == "val"):
        out.setdefault(VOWELS.index(table["vowel"].iloc[i]), []).append(mouth[i])
    return out


def check_emotions(manifest: pd.DataFrame, emotions: tuple[str, ...], path: Path) -> None:
    """Every manifest emotion must be one of ``base.emotions``."""
    unknown = sorted(set(manifest["emotion"]) - set(emotions))
    if unknown:
        raise DataError(f"{path}: emotions {unknown} are not in base.emotions {emotions}")


@dataclass(frozen=True)
class FeatureArrays:
    """A features file's packed frames: utterance ids, offsets (N + 1,) and frames."""

    utt_ids: np.ndarray  # (N,) str
    offsets: np.ndarray  # (N + 1,) frames of utterance i are frames[offsets[i]:offsets[i + 1]]
    frames: np.ndarray  # (F, D) or (F, L, D)
    frame_rate: float  # frames per second
    path: Path  # the features file, for messages


def corpus_data(
    name: str,
    features: FeatureArrays,
    manifest: pd.DataFrame,
    manifest_path: Path,
    segments: tuple[pd.DataFrame, list[np.ndarray], Path],
    emotions: tuple[str, ...],
    skips: SkipReport,
) -> CorpusData:
    """Assemble a corpus from its features, manifest and clustered segments (table, mouth, dir).

    Utterances without feature frames are skipped into ``skips``; the segment table must have
    been checked with :func:`check_segment_utterances` and carry a ``cluster`` column.
    """
    f = features
    utts, pos = _usable_utterances(manifest, f.utt_ids, f.offsets, f.path, skips)
    table, mouth, seg_dir = segments
    length = np.diff(f.offsets)[pos]
    return CorpusData(
        name=name,
        utt_ids=utts["utt_id"].to_numpy(str),
        labels=utts["emotion"].map({e: i for i, e in enumerate(emotions)}).to_numpy(np.int64),
        splits=utts["split"].to_numpy(str),
        start=f.offsets[pos],
        length=length,
        frames=f.frames,
        segments=segment_index(table, utts, length, f.frame_rate, seg_dir),
        mouth_val=_mouth_val(table, mouth),
        features_path=f.path,
        manifest_path=manifest_path,
    )


def _require_classes(data: CorpusData, split: str, emotions: tuple[str, ...]) -> None:
    """Fail naming the corpus, split and missing class unless every emotion has utterances."""
    present = set(data.labels[data.rows(split)].tolist())
    missing = [e for i, e in enumerate(emotions) if i not in present]
    if missing:
        raise DataError(
            f"corpus {data.name!r} ({data.manifest_path}): the {split} split has no utterances "
            f"with features for {missing}; a model trained on it needs every class of "
            f"base.emotions {list(emotions)}"
        )


def check_direction(
    src: CorpusData, tgt: CorpusData, methods: tuple[str, ...], emotions: tuple[str, ...]
) -> None:
    """The splits each method of a direction needs exist, with every class where it trains."""
    if any(m != "upper_bound" for m in methods):
        _require_classes(src, "train", emotions)
    if "upper_bound" in methods:
        _require_classes(tgt, "train", emotions)
    for data, split in ((src, "val"), (tgt, "val"), (tgt, "test"), (tgt, "train")):
        if not len(data.rows(split)):
            raise DataError(
                f"corpus {data.name!r} ({data.manifest_path}): no {split} utterances with features"
            )
    if src.frames.shape[1:] != tgt.frames.shape[1:]:
        raise DataError(
            f"feature shapes differ: {src.features_path} has frames {src.frames.shape[1:]}, "
            f"{tgt.features_path} {tgt.frames.shape[1:]}; extract both with the same encoder"
        )


def check_directions(
    data: dict[str, CorpusData],
    directions: tuple[tuple[str, str], ...],
    methods: tuple[str, ...],
    emotions: tuple[str, ...],
) -> None:
    """:func:`check_direction` on every (source, target) pair."""
    for src, tgt in directions:
        check_direction(data[src], data[tgt], methods, emotions)
