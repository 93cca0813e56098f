"""Command ``predict``: emotion posteriors of new audio from a trained model (docs/predict.md).

Not a DVC stage: ``agcc predict --model SOURCE --out posteriors.csv AUDIO...`` runs a model of
the train stage on any audio. ``SOURCE`` is a checkpoint (``data/train/<method>/runs/<key>/
seed<k>/model.pt``) or an MLflow model URI (``runs:/<run_id>/model``, ``models:/<name>/<v>``),
loaded by :func:`agcc.tracking.load_model`. The audio is encoded by the feature extractor the
model was trained on, rebuilt from the checkpoint's ``features`` metadata (encoder, model,
layer, n_mels, utterance_norm; :data:`agcc.io.checkpoint.FEATURE_KEYS`), one file at a time,
and the frames are rounded to float16 as the feature store keeps them, so a clip of the
training corpora gets the posteriors the train stage wrote for it.

Only audio goes in: the anchoring loss uses the mouth tracks (videos, landmarks) while
training only, and the trained model never reads them. Output CSV, one row per file: audio (the
path given), utt_id (file stem), pred (class with the highest posterior) and prob_<class> per
class (rounded to 6 decimals), in the model's class order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from agcc import tracking
from agcc.devices import resolve_device
from agcc.encoders import Encoder, build_encoder, utterance_normalise
from agcc.errors import ConfigError
from agcc.io.audio import read_audio
from agcc.params import FeatureParams

log = logging.getLogger(__name__)

#: Audio file suffixes taken from a folder given as input.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def audio_files(paths: list[Path]) -> list[Path]:
    """The given files, and the audio files inside given folders (sorted, recursively)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            out.append(path)
    if not out:
        raise ConfigError(f"no audio files in {[str(p) for p in paths]}")
    return out


def feature_params(identity: dict[str, Any] | None, device: str) -> FeatureParams:
    """The features section that rebuilds the extractor a model's frames came from."""
    if not identity or "encoder" not in identity:
        raise ConfigError(
            "the model does not say which feature extractor it was trained on (no features "
            "metadata: a checkpoint from before agcc recorded it); re-run the train stage"
        )
    fields = {
        k: identity[k] for k in ("encoder", "layer", "n_mels", "utterance_norm") if k in identity
    }
    if identity["encoder"] != "logmel":
        fields["model"] = identity["model"]
    return FeatureParams(**fields, device=device)


def encode(encoder: Encoder, path: Path, utterance_norm: bool) -> np.ndarray:
    """Frames (F, D) or (F, L, D) of one file, float16-rounded as in the feature store."""
    frames = encoder([read_audio(path)])[0]
    if utterance_norm:
        frames = utterance_normalise(frames)
    return frames.astype(np.float16).astype(np.float32)


def posteriors(module: torch.nn.Module, frames: np.ndarray, device: torch.device) -> np.ndarray:
    """Posteriors (C,) of one utterance's frames."""
    with torch.inference_mode():
        x = torch.from_numpy(frames[None]).to(device)  # (1, F, D) or (1, F, L, D)
        return module(x)[0].double().cpu().numpy()


def run(model: str, audio: list[Path], out: Path, device: str = "auto") -> pd.DataFrame:
    """Posteriors of every audio file under ``model``; written to ``out`` (CSV) and returned."""
    dev = resolve_device(device, "--device")
    module, metadata = tracking.load_model(model, str(dev))
    fp = feature_params(metadata.get("features"), dev.type)
    classes = list(metadata.get("classes") or metadata["emotions"])
    files = audio_files(audio)
    log.info("%s: %s model of %s, %d files", model, fp.encoder, metadata.get("method"), len(files))
    encoder = build_encoder(fp)
    probs = np.stack(
        [posteriors(module, encode(encoder, f, fp.utterance_norm), dev) for f in files]
    )
    table = pd.DataFrame(
        {
            "audio": [str(f) for f in files],
            "utt_id": [f.stem for f in files],
            "pred": [classes[i] for i in probs.argmax(axis=1)],
        }
    )
    for j, name in enumerate(classes):
        table[f"prob_{name}"] = probs[:, j].round(6)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    log.info("wrote %s", out)
    return table
