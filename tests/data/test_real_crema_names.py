"""The CREMA-D adapter on a tree of empty files carrying the real 7,442 clip names and metadata."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from agcc.corpora import Manifest, assign_splits, build_manifest
from agcc.corpora.crema_d import SENTENCES
from agcc.params import CorpusParams, PrepareParams
from agcc.skips import SkipReport

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
META = SHARED / "data" / "crema-d-metadata"


@pytest.fixture(scope="module")
def crema_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AudioWAV/ and VideoFlash/ with the real (empty) files plus the real label tables."""
    if not (META / "file-list.txt").exists():
        pytest.skip(f"{META} not found: ../shared (real CREMA-D metadata) is absent")
    root = tmp_path_factory.mktemp("crema")
    names = (META / "file-list.txt").read_text().split()
    for folder in {n.split("/")[0] for n in names}:
        (root / folder).mkdir()
    for name in names:
        (root / name).touch()
    for table in ("summaryTable.csv", "VideoDemographics.csv"):
        shutil.copy(META / table, root / table)
    return root


def _manifest(root: Path, labels: str) -> tuple[Manifest, SkipReport]:
    """build_manifest on the real-name tree with the given label kind."""
    cp = CorpusParams(
        adapter="crema_d",
        root=str(root),
        landmarks_dir=str(root / "openface"),
        textgrid_dir=str(root / "textgrids"),
        labels=labels,
    )
    skips = SkipReport("prepare@crema_d")
    return build_manifest("crema_d", cp, skips), skips


def test_intended_labels_give_the_published_four_class_counts(crema_root: Path) -> None:
    m, skips = _manifest(crema_root, "intended")
    f = m.frame
    assert len(f) == 4900
    assert Counter(f["emotion"]) == {
        "anger": 1271,
        "happiness": 1271,
        "sadness": 1271,
        "neutral": 1087,
    }
    assert m.dropped == {"disgust": 1271, "fear": 1271}
    assert skips.n_skipped == 0 and m.n_seen == 7442
    assert f["speaker"].nunique() == 91
    assert Counter(f.drop_duplicates("speaker")["gender"]) == {"M": 48, "F": 43}
    assert set(f["sentence"]) == set(SENTENCES)
    assert (f["transcript"] == f["sentence"].map(SENTENCES)).all()
    # the known bad clips stay in: only the audio-reading stages can tell they are broken
    assert {"1076_MTI_SAD_XX", "1064_TIE_SAD_XX"} <= set(f["utt_id"])


@pytest.mark.parametrize(
    ("labels", "kept", "dropped"),
    [
        (
            "voice",
            {"neutral": 3897, "anger": 986, "sadness": 370, "happiness": 353},
            {"fear": 645, "disgust": 547, "no consensus": 644},
        ),
        (
            "multimodal",
            {"neutral": 1972, "happiness": 1219, "anger": 1019, "sadness": 589},
            {"disgust": 1139, "fear": 1084, "no consensus": 420},
        ),
    ],
)
def test_perceived_labels_counts_sum_to_all_clips(
    crema_root: Path, labels: str, kept: dict[str, int], dropped: dict[str, int]
) -> None:
    m, skips = _manifest(crema_root, labels)
    assert Counter(m.frame["emotion"]) == kept
    assert m.dropped == dropped
    assert len(m.frame) + sum(m.dropped.values()) == 7442 and skips.n_skipped == 0


def test_speaker_independent_splits_on_the_91_actors(crema_root: Path) -> None:
    f = _manifest(crema_root, "intended")[0].frame
    fractions = PrepareParams().split_fractions
    split = f["speaker"].map(assign_splits(f["speaker"].tolist(), fractions, seed=13))
    assert (f.assign(split=split).groupby("speaker")["split"].nunique() == 1).all()
    share = split.value_counts(normalize=True)
    for name, frac in fractions.items():
        assert share[name] == pytest.approx(frac, abs=0.02)
