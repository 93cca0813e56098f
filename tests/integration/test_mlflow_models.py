"""A training run's MLflow model: loaded by MLflow alone, it predicts what `agcc predict` writes.

Two tiny corpora get real audio, log-mel features from the features stage, and one trained
method (source_only); the model of a training run is then loaded with
``mlflow.pytorch.load_model("runs:/<id>/model")`` and run on a clip.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from agcc.cli import main
from agcc.encoders import LogMelEncoder
from agcc.io.audio import read_audio
from agcc.params import EMOTIONS
from tests.integration.test_train_evaluate import (
    CORPORA,
    _train,
    fake_clusters,
    fake_corpus,
    write_params,
)

N_MELS = 8


def _add_audio(root: Path, name: str, seed: int) -> None:
    """A wav per utterance, as long as its fake features, with an emotion-dependent tone."""
    rng = np.random.default_rng(seed)
    manifest_path = root / "prepared" / name / "manifest.csv"
    manifest = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    with np.load(root / "features" / name / "features.npz") as z:
        n_frames = dict(zip(z["utt_id"].astype(str), np.diff(z["offsets"]), strict=True))
    paths = []
    for utt, emotion in zip(manifest["utt_id"], manifest["emotion"], strict=True):
        t = np.arange(int(n_frames[utt]) * 320) / 16000
        tone = 0.3 * np.sin(2 * np.pi * 200 * (1 + EMOTIONS.index(emotion)) * t)
        wave = (tone + rng.normal(0, 0.05, len(t))).astype(np.float32)
        path = root / "audio" / name / f"{utt}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave, 16000, subtype="PCM_16")
        paths.append(str(path))
    manifest["audio"] = paths
    manifest.to_csv(manifest_path, index=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Root of a trained source_only method on log-mel features, and its params file."""
    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        rows = []
        for i, name in enumerate(CORPORA):
            rows += fake_corpus(root, name, i + 1, 0.5 * i)
            _add_audio(root, name, i)
        fake_clusters(root, rows)
        params = write_params(root)
        raw = yaml.safe_load(params.read_text())
        raw["features"] |= {"encoder": "logmel", "n_mels": N_MELS, "device": "cpu"}
        if "binary_models" in raw["train"]:  # the 4-class models only: a shorter test
            raw["train"]["binary_models"] = False
        params.write_text(yaml.safe_dump(raw))
        for name in CORPORA:
            manifest = str(root / "prepared" / name / "manifest.csv")
            out = str(root / "features" / name)
            args = ["features", "--corpus", name, "--manifest", manifest, "--out", out]
            assert main(["--params", str(params), *args]) == 0
        assert _train(root, params, "source_only") == 0
    return root, params


def _run_id(root: Path, corpus: str) -> str:
    """The MLflow run id of the source_only model trained on ``corpus``."""
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    runs = mlflow.search_runs(
        experiment_names=["agcc"],
        filter_string=f"tags.method = 'source_only' and tags.train_corpus = '{corpus}'",
    )
    assert len(runs) >= 1, runs
    return str(runs["run_id"].iloc[0])


def _mlflow_posteriors(uri: str, clip: Path) -> np.ndarray:
    """What a user gets with MLflow alone: load the model, encode the clip, run it."""
    model = mlflow.pytorch.load_model(uri)
    features = mlflow.models.get_model_info(uri).metadata["features"]
    assert features["encoder"] == "logmel" and features["n_mels"] == N_MELS
    frames = LogMelEncoder(features["n_mels"], torch.device("cpu"))([read_audio(clip)])[0]
    x = torch.from_numpy(frames.astype(np.float16).astype(np.float32)[None])  # (1, F, D)
    with torch.inference_mode():
        return model(x)[0].double().numpy()


@pytest.mark.slow
def test_mlflow_model_of_a_training_run_predicts_what_agcc_predict_writes(
    trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = trained
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    uri = f"runs:/{_run_id(root, 'corp_a')}/model"
    clip = root / "audio" / "corp_b" / "corp_b_test_anger_0.wav"
    expected = _mlflow_posteriors(uri, clip)
    assert expected.shape == (len(EMOTIONS),) and abs(expected.sum() - 1) < 1e-5
    out = root / "predict.csv"
    assert main(["predict", "--model", uri, "--out", str(out), "--device", "cpu", str(clip)]) == 0
    table = pd.read_csv(out)
    assert list(table["utt_id"]) == [clip.stem]
    got = table[[f"prob_{e}" for e in EMOTIONS]].to_numpy()[0]
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert table["pred"].iloc[0] == EMOTIONS[int(expected.argmax())]


@pytest.mark.slow
def test_checkpoint_predict_equals_the_train_stage_predictions(
    trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same extractor as in training: a test clip's posteriors equal predictions_<t>.csv."""
    root, _ = trained
    monkeypatch.chdir(root)
    (checkpoint,) = (root / "train" / "source_only" / "runs").glob("corp_a*/seed1/model.pt")
    written = pd.read_csv(checkpoint.parent / "predictions_corp_b.csv")
    clips = [root / "audio" / "corp_b" / f"{u}.wav" for u in written["utt_id"]]
    out = root / "predict_ckpt.csv"
    args = ["predict", "--model", str(checkpoint), "--out", str(out), "--device", "cpu"]
    assert main([*args, *map(str, clips)]) == 0
    got = pd.read_csv(out)
    cols = [f"prob_{e}" for e in EMOTIONS]
    assert list(got["utt_id"]) == list(written["utt_id"])
    np.testing.assert_allclose(got[cols].to_numpy(), written[cols].to_numpy(), atol=1e-5)


@pytest.mark.slow
def test_logged_model_has_signature_metadata_and_pyfunc_flavour(
    trained: tuple[Path, Path],
) -> None:
    root, _ = trained
    uri = f"runs:/{_run_id(root, 'corp_b')}/model"
    info = mlflow.models.get_model_info(uri)
    (spec,) = info.signature.inputs.inputs
    assert spec.shape == (-1, -1, N_MELS)
    assert info.metadata["classes"] == list(EMOTIONS)
    assert info.metadata["method"] == "source_only" and info.metadata["source"] == "corp_b"
    frames = np.random.default_rng(0).normal(size=(1, 30, N_MELS)).astype(np.float32)
    probs = mlflow.pyfunc.load_model(uri).predict(frames)
    assert np.asarray(probs).shape == (1, len(EMOTIONS))
    np.testing.assert_allclose(np.asarray(probs).sum(), 1.0, atol=1e-5)
