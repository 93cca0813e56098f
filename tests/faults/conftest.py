"""A tiny corpus built from arrays (no demo generator) and helpers to run stages on it.

Four utterances of 2 s, each with a wav, an MFA-layout TextGrid, an OpenFace 2.2 CSV and a
mouth track, plus the align-stage manifest naming them. Every stage runs through the ``agcc``
command line in the test's folder; MLflow writes to one SQLite store for the whole test run
(a fresh store costs seconds), and each test reads back the newest run of its stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from agcc import mouth as geom
from agcc.cli import main
from agcc.io.manifest import write_manifest
from agcc.io.mouth import write_mouth
from agcc.io.openface import write_openface
from agcc.io.textgrid import write_textgrid

REPO = Path(__file__).resolve().parents[2]
CORPUS = "demo_crema"
UTTS = ("u0", "u1", "u2", "u3")
SECONDS, FPS, RATE = 2.0, 30.0, 16000
#: (start, end, phone) of every utterance: three target vowels between consonants.
PHONES = (
    (0.20, 0.30, "HH"),
    (0.30, 0.50, "AA1"),
    (0.50, 0.60, "T"),
    (0.60, 0.80, "IY1"),
    (0.80, 0.90, "S"),
    (0.90, 1.10, "UW1"),
    (1.10, 1.20, "N"),
)
EMOTIONS = ("neutral", "anger", "happiness", "sadness")


@dataclass
class Corpus:
    """Paths of the tiny corpus and its params file."""

    root: Path
    params: Path
    manifest: Path
    mouth: Path

    def file(self, utt: str, kind: str) -> Path:
        """The wav, TextGrid or csv of one utterance."""
        folder = {"wav": "wav", "TextGrid": "tg", "csv": "of"}[kind]
        return self.root / folder / f"{utt}.{kind}"

    def cli(self, *args: str) -> int:
        """Run ``agcc --params <params> <args>``; returns the exit status."""
        return main(["--params", str(self.params), *args])

    def segments(self, out: str = "seg", mouth: Path | None = None) -> int:
        """Run the segments stage into ``out``."""
        m = str(mouth or self.mouth)
        args = ("segments", "--corpus", CORPUS, "--manifest", str(self.manifest), "--mouth", m)
        return self.cli(*args, "--out", str(self.root / out))

    def landmarks(self, out: str = "lm") -> int:
        """Run the landmarks stage (OpenFace CSVs -> mouth.npz) into ``out``."""
        args = ("landmarks", "--corpus", CORPUS, "--manifest", str(self.manifest))
        return self.cli(*args, "--out", str(self.root / out))

    def features(self, out: str = "feat") -> int:
        """Run the features stage (log-mel) into ``out``."""
        args = ("features", "--corpus", CORPUS, "--manifest", str(self.manifest))
        return self.cli(*args, "--out", str(self.root / out))


def face(n_frames: int) -> np.ndarray:
    """(F, 68, 2) pixel faces: eyes on hexagons at (100, 100) and (160, 100), a moving mouth."""
    t = np.arange(n_frames)[:, None] / FPS
    pts = np.zeros((n_frames, 68, 2)) + 150.0
    ring = 8 * np.stack([np.cos(np.arange(6) * np.pi / 3), np.sin(np.arange(6) * np.pi / 3)], 1)
    pts[:, 36:42] = np.array([100.0, 100.0]) + ring
    pts[:, 42:48] = np.array([160.0, 100.0]) + ring
    angle = np.arange(12) * np.pi / 6
    opening = 6 + 4 * np.sin(2 * np.pi * 1.5 * t)  # (F, 1)
    pts[:, 48:60, 0] = 130 + 18 * np.cos(angle)[None, :]
    pts[:, 48:60, 1] = 160 + opening * np.sin(angle)[None, :]
    return pts


def _wav(path: Path, seconds: float, seed: int) -> None:
    """A 16 kHz tone with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = 0.2 * np.sin(2 * np.pi * (180 + 20 * seed) * t) + 0.01 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), RATE, subtype="PCM_16")


def truncate_wav(path: Path) -> None:
    """Keep the first half of the file's bytes, as a half-finished download does."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def short_wav(path: Path) -> None:
    """Rewrite the file as a complete, valid 0.05 s wav."""
    wave, rate = sf.read(path, dtype="float32")
    sf.write(path, wave[: int(0.05 * rate)], rate, subtype="PCM_16")


def _params(root: Path) -> Path:
    """params.yaml of the repository with skips allowed up to half of a stage's input."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["base"]["max_skip_share"] = 0.5
    raw["features"] |= {"encoder": "logmel", "device": "cpu"}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    return path


def build(root: Path) -> Corpus:
    """Write the four utterances' files, mouth.npz and the manifest under ``root``."""
    time = np.arange(int(SECONDS * FPS)) / FPS
    rows, mouths = [], []
    words = [(PHONES[0][0], PHONES[-1][1], "word")]
    corpus = Corpus(root, _params(root), root / "manifest.csv", root / "mouth.npz")
    for i, utt in enumerate(UTTS):
        _wav(corpus.file(utt, "wav"), SECONDS, i)
        write_textgrid(corpus.file(utt, "TextGrid"), words, PHONES, SECONDS)
        pts = face(len(time))
        ones = np.ones(len(time))
        write_openface(corpus.file(utt, "csv"), time, 0.98 * ones, ones, pts, "2.2")
        eyes = geom.eye_centres(pts)
        mouths.append(geom.mouth_features(pts, eyes).astype(np.float32))
        rows.append(
            {
                "utt_id": utt,
                "corpus": CORPUS,
                "speaker": f"s{i % 2}",
                "gender": "F",
                "session": "",
                "sentence": "S1",
                "emotion": EMOTIONS[i],
                "split": "val",
                "audio": str(corpus.file(utt, "wav")),
                "video": "",
                "landmarks": str(corpus.file(utt, "csv")),
                "textgrid": str(corpus.file(utt, "TextGrid")),
                "transcript": "word",
            }
        )
    save_tracks(
        corpus.mouth, dict(zip(UTTS, zip([time] * len(UTTS), mouths, strict=True), strict=True))
    )
    write_manifest(pd.DataFrame(rows), corpus.manifest)
    return corpus


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite MLflow store for every fault test."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_uri: str) -> Corpus:
    """The tiny corpus in ``tmp_path``, which is also the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    return build(tmp_path)


def latest_run(stage_run_name: str):  # noqa: ANN201 - an mlflow Run
    """The newest MLflow run named ``stage_run_name`` (e.g. ``segments:demo_crema``)."""
    import mlflow

    runs = mlflow.search_runs(
        experiment_names=["agcc"],
        filter_string=f"attributes.run_name = '{stage_run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    assert runs, f"no MLflow run {stage_run_name}"
    return runs[0]


def read_skips(out: Path) -> pd.DataFrame:
    """skips.csv of a stage folder, every cell as text."""
    return pd.read_csv(out / "skips.csv", dtype=str, keep_default_na=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def save_tracks(path: Path, tracks: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Write utt_id -> (time, mouth) tracks as a mouth.npz."""
    times, mouths = [t for t, _ in tracks.values()], [m for _, m in tracks.values()]
    return write_mouth(path, list(tracks), times, mouths)


def assert_skipped(
    out: Path,
    run_name: str,
    utt: str,
    kind: str,
    path: Path | str,
    caplog: pytest.LogCaptureFixture,
) -> pd.DataFrame:
    """One skip of ``kind`` for ``utt`` naming ``path``, in skips.csv, the log and MLflow."""
    skips = read_skips(out)
    assert skips["item"].tolist() == [utt], skips
    row = skips.iloc[0]
    assert row["kind"] == kind and row["path"] == str(path)
    assert row["detail"].startswith(f"{path}: ")
    assert any(str(path) in r.getMessage() and utt in r.getMessage() for r in caplog.records)
    run = latest_run(run_name)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["n_skipped"] == 1 and run.data.metrics[f"skipped.{kind}"] == 1
    return skips
