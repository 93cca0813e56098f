"""The prepare stage: manifest.csv and splits.csv schema, label sets, independence, MLflow runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from agcc.io.manifest import MANIFEST_COLUMNS, read_manifest
from agcc.params import EMOTIONS, BaseParams, CorpusParams, PrepareParams
from agcc.skips import TooManySkipsError
from agcc.stages import prepare
from tests.tracking_store import runs as stored_runs

CREMA_EMOS = ("ANG", "HAP", "SAD", "NEU", "DIS")


def _crema(root: Path, n_actors: int, bad_names: int = 0) -> CorpusParams:
    """A CREMA-D tree of empty wavs: n_actors x 2 sentences x 5 emotions, plus bad names."""
    (root / "AudioWAV").mkdir(parents=True)
    for a in range(1001, 1001 + n_actors):
        for s in ("DFA", "IEO"):
            for e in CREMA_EMOS:
                (root / "AudioWAV" / f"{a}_{s}_{e}_XX.wav").touch()
    for i in range(bad_names):
        (root / "AudioWAV" / f"clip{i}.wav").touch()
    return CorpusParams(
        adapter="crema_d",
        root=str(root),
        landmarks_dir=str(root / "openface"),
        textgrid_dir=str(root / "textgrids"),
    )


def _improv(root: Path) -> CorpusParams:
    """An MSP-IMPROV tree: 6 sessions x 2 speakers x 4 target sentences, one O label each."""
    lines = []
    for n in range(1, 7):
        for g, lead in (("F", "FM"), ("M", "MF")):
            for t, e in enumerate("AHSNA", start=1):
                utt = f"IMPROV-S{t:02d}{e}-{g}{n:02d}-P-{lead}{t:02d}"
                wav = root / "Audio" / f"session{n}" / f"S{t:02d}{e}" / "P" / f"MSP-{utt}.wav"
                wav.parent.mkdir(parents=True, exist_ok=True)
                wav.touch()
                label = "O" if t == 5 else e
                lines += [f"UTD-{utt}.avi; {label}; A:3.0; V:3.0; D:3.0; N:5;", "r1; x; y;", ""]
    (root / "Evaluation.txt").write_text("\n".join(lines))
    return CorpusParams(
        adapter="msp_improv",
        root=str(root),
        landmarks_dir=str(root / "of"),
        textgrid_dir=str(root / "tg"),
        labels="consensus",
        split_by="session",
    )


def _check_outputs(out: Path, frame: pd.DataFrame, split_by: str) -> pd.DataFrame:
    """Schema and consistency checks shared by every corpus; returns the manifest read back."""
    manifest = read_manifest(out / "manifest.csv")
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    assert manifest["utt_id"].is_unique and len(manifest) == len(frame)
    assert set(manifest["emotion"]) <= set(EMOTIONS)
    assert set(manifest["split"]) == {"train", "val", "dev", "test"}
    assert (manifest.groupby(split_by)["split"].nunique() == 1).all()
    assert (manifest.groupby("speaker")["split"].nunique() == 1).all()
    splits = pd.read_csv(out / "splits.csv", dtype=str, keep_default_na=False)
    assert list(splits.columns) == ["group", "split", "n_utts"]
    assert splits["group"].is_unique and splits["n_utts"].astype(int).sum() == len(manifest)
    mapping = dict(zip(splits["group"], splits["split"], strict=True))
    assert (manifest[split_by].map(mapping) == manifest["split"]).all()
    return manifest


def test_prepare_crema_writes_manifest_splits_metrics_and_mlflow_run(tracked: Path) -> None:
    cp = _crema(tracked / "raw", n_actors=10)
    frame = prepare.run("demo_crema", cp, PrepareParams(), BaseParams(), tracked / "out")
    manifest = _check_outputs(tracked / "out", frame, "speaker")
    assert len(manifest) == 10 * 2 * 4
    metrics = json.loads((tracked / "out" / "metrics.json").read_text())
    assert metrics["n_utts"] == 80 and metrics["n_speakers"] == 10
    assert metrics["dropped.disgust"] == 20 and metrics["n_input"] == 100
    assert metrics["n_skipped"] == 0 and metrics["emotion.anger"] == 20
    assert [metrics[f"split.{s}.n_speakers"] for s in ("train", "val", "dev", "test")] == [
        6,
        2,
        1,
        1,
    ]
    assert sum(metrics[f"split.{s}.n_utts"] for s in ("train", "val", "dev", "test")) == 80
    (run,) = stored_runs(tracked)
    assert run.info.status == "FINISHED" and run.data.tags["corpus"] == "demo_crema"
    assert run.data.metrics["dropped.disgust"] == 20
    assert run.data.params["base.seed"] == "13"
    artifacts = {
        Path(a).name for a in Path(run.info.artifact_uri.removeprefix("file://")).iterdir()
    }
    assert {"manifest.csv", "splits.csv", "skips.csv"} <= artifacts


def test_prepare_msp_improv_splits_by_session_and_subsets_emotions(tracked: Path) -> None:
    cp = _improv(tracked / "raw")
    base = BaseParams(emotions=("anger", "happiness", "sadness"))
    frame = prepare.run("demo_improv", cp, PrepareParams(), base, tracked / "out")
    manifest = _check_outputs(tracked / "out", frame, "session")
    assert set(manifest["emotion"]) == {"anger", "happiness", "sadness"}
    assert sorted(set(manifest["session"])) == ["1", "2", "3", "4", "5", "6"]
    metrics = json.loads((tracked / "out" / "metrics.json").read_text())
    assert metrics["dropped.neutral"] == 12 and metrics["dropped.other_O"] == 12
    assert metrics["n_groups"] == 6 and metrics["n_speakers"] == 12 and metrics["n_utts"] == 36


def test_same_seed_same_split_file_other_seed_different(tracked: Path) -> None:
    cp = _crema(tracked / "raw", n_actors=12)
    texts = []
    for i, seed in enumerate((5, 5, 6)):
        prepare.run("c", cp, PrepareParams(), BaseParams(seed=seed), tracked / f"out{i}")
        texts.append((tracked / f"out{i}" / "splits.csv").read_text())
    assert texts[0] == texts[1] and texts[0] != texts[2]


def test_too_many_skips_fails_loudly_and_marks_the_run_failed(tracked: Path) -> None:
    cp = _crema(tracked / "raw", n_actors=4, bad_names=20)  # 20 of 60 files unparseable
    with pytest.raises(TooManySkipsError, match=r"dropped 20 of 60 inputs"):
        prepare.run("c", cp, PrepareParams(), BaseParams(max_skip_share=0.25), tracked / "out")
    assert not (tracked / "out" / "metrics.json").exists()
    assert not (tracked / "out" / "manifest.csv").exists()
    skips = pd.read_csv(tracked / "out" / "skips.csv")
    assert len(skips) == 20 and skips["reason"].str.startswith("file name does not parse").all()
    (run,) = stored_runs(tracked)
    assert run.info.status == "FAILED"


def test_too_few_speakers_for_four_splits_is_an_error_without_a_pilot_order(
    tracked: Path,
) -> None:
    cp = _crema(tracked / "raw", n_actors=3)
    with pytest.raises(ValueError, match="at least 4 distinct groups .* got 3"):
        prepare.run("c", cp, PrepareParams(pilot_split_order=()), BaseParams(), tracked / "out")
    (run,) = stored_runs(tracked)
    assert run.info.status == "FAILED"


def test_a_three_actor_pilot_is_prepared_and_its_empty_split_reported(tracked: Path) -> None:
    cp = _crema(tracked / "raw", n_actors=3)
    frame = prepare.run("c", cp, PrepareParams(), BaseParams(), tracked / "out")
    split_of = frame.groupby("speaker")["split"].agg(set)
    assert all(len(s) == 1 for s in split_of)  # still speaker-independent
    assert sorted(s.pop() for s in split_of) == ["test", "train", "val"]
    metrics = json.loads((tracked / "out" / "metrics.json").read_text())
    assert metrics["n_empty_splits"] == 1 and metrics["split.dev.n_utts"] == 0


def test_a_speaker_in_two_written_splits_fails_naming_it_and_publishes_nothing(
    tracked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cp = _crema(tracked / "raw", n_actors=5)

    def leaky(frame: pd.DataFrame, *args: object) -> pd.DataFrame:
        split = ["train", "test"] * (len(frame) // 2) + ["train"] * (len(frame) % 2)
        return frame.assign(split=split)  # every speaker in train and test

    monkeypatch.setattr(prepare, "add_splits", leaky)
    with pytest.raises(
        ValueError, match=r"splits are not speaker-independent: 5 .*1001 in test, train"
    ):
        prepare.run("c", cp, PrepareParams(), BaseParams(), tracked / "out")
    assert not (tracked / "out" / "manifest.csv").exists()
    assert not (tracked / "out" / "splits.csv").exists()
