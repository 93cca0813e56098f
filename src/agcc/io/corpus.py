"""The training inputs of corpora: features, manifest, segments and their AG clusters, read.

The train and tune stages read a corpus through :func:`load_corpus`: the file readers of
:mod:`agcc.io` feed :func:`agcc.training.data.corpus_data`, which assembles and checks the
in-memory :class:`~agcc.training.data.CorpusData`. Errors name the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from agcc.errors import ConfigError
from agcc.framing import FRAME_RATE
from agcc.io.cluster_model import read_assignments
from agcc.io.features import read_features
from agcc.io.manifest import read_manifest
from agcc.io.segments import load_segments
from agcc.skips import SkipReport
from agcc.training.data import (
    CorpusData,
    FeatureArrays,
    check_directions,
    check_emotions,
    check_segment_utterances,
    corpus_data,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """Where the train and tune stages read from: one sub-folder per corpus under each root."""

    features_root: Path
    segments_root: Path
    prepared_root: Path
    cluster_dir: Path


def load_corpus(
    name: str,
    feat_dir: Path,
    manifest_path: Path,
    seg_dir: Path,
    cluster_dir: Path,
    k: int,
    emotions: tuple[str, ...],
    skips: SkipReport,
) -> tuple[CorpusData, dict]:
    """One corpus: features, manifest labels and clustered segments, checked; and feature meta."""
    utt_ids, offsets, frames, meta = read_features(feat_dir)
    manifest = read_manifest(manifest_path)
    check_emotions(manifest, emotions, manifest_path)
    table, mouth = load_segments(seg_dir)
    check_segment_utterances(table, manifest, seg_dir)
    table = read_assignments(cluster_dir, table, k)
    rate = float(meta.get("frame_rate", FRAME_RATE))
    features = FeatureArrays(utt_ids, offsets, frames, rate, feat_dir / "features.npz")
    segments = (table, mouth, seg_dir)
    return corpus_data(name, features, manifest, manifest_path, segments, emotions, skips), meta


def _load_named(
    inputs: Inputs, names: list[str], k: int, emotions: tuple[str, ...], skips: SkipReport
) -> dict[str, CorpusData]:
    """Every named corpus from ``inputs`` with the segments' clusters of the AG model of k."""
    data = {}
    for name in tqdm(names, desc="load corpora"):
        data[name], _ = load_corpus(
            name,
            inputs.features_root / name,
            inputs.prepared_root / name / "manifest.csv",
            inputs.segments_root / name,
            inputs.cluster_dir,
            k,
            emotions,
            skips,
        )
        log.info(
            "%s: %d utterances with features, %d segments",
            name,
            len(data[name].utt_ids),
            len(data[name].segments.seg_id),
        )
    return data


def load_directions(
    inputs: Inputs,
    directions: tuple[tuple[str, str], ...],
    methods: tuple[str, ...],
    k: int,
    emotions: tuple[str, ...],
    skips: SkipReport,
    max_skip_share: float,
) -> dict[str, CorpusData]:
    """Every corpus of the directions; skips checked before any training; each direction checked."""
    check_prepared(inputs, directions)
    names = list(dict.fromkeys(c for d in directions for c in d))
    data = _load_named(inputs, names, k, emotions, skips)
    skips.check(max_skip_share)  # before any training, not after hours of it
    check_directions(data, directions, methods, emotions)
    return data


def check_prepared(inputs: Inputs, directions: tuple[tuple[str, str], ...]) -> None:
    """ConfigError naming the ``train.directions`` key path of every corpus never prepared.

    A direction left over from other ``corpora`` (e.g. the demo's) is found here, before any
    file is read, with the key to fix.
    """
    problems = [
        f"train.directions[{i}][{j}]: corpus {name!r} has no prepared manifest "
        f"({inputs.prepared_root / name / 'manifest.csv'}); is it in params.yaml corpora?"
        for i, pair in enumerate(directions)
        for j, name in enumerate(pair)
        if not (inputs.prepared_root / name / "manifest.csv").is_file()
    ]
    if problems:
        raise ConfigError("\n  ".join(["invalid train.directions:", *problems]))
