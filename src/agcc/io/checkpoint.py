"""model.pt of a train run: the SER model's config, weights and run metadata in one file.

The file carries its :class:`agcc.models.SERConfig`, so :func:`load_checkpoint` rebuilds the
model from the file alone, and (``meta["features"]``) the identity of the feature extractor it
was trained on: the features stage's meta.json keys :data:`FEATURE_KEYS` (encoder, model,
layer, n_mels, utterance_norm, ...), so new audio can be encoded the same way
(``agcc predict``). :class:`Posteriors` is what the MLflow model of a checkpoint computes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from agcc.errors import DataError, MissingInputError
from agcc.models import SERConfig, SERModel

#: Keys of a checkpoint file.
CHECKPOINT_KEYS = ("config", "state_dict", "meta")
#: The features stage's meta.json keys that identify the extractor of a model's input frames.
FEATURE_KEYS = (
    "encoder",
    "model",
    "layer",
    "n_layers",
    "dim",
    "n_mels",
    "utterance_norm",
    "frame_rate",
    "sample_rate",
)
#: Run metadata copied into an MLflow model's metadata besides ``features``.
RUN_KEYS = (
    "method",
    "source",
    "target",
    "seed",
    "oracle",
    "task",
    "emotions",
    "classes",
    "best_epoch",
)


def feature_identity(features_dir: Path) -> dict[str, Any]:
    """The :data:`FEATURE_KEYS` of a features folder's meta.json (written by the features stage)."""
    path = Path(features_dir) / "meta.json"
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file; run the features stage first")
    meta = json.loads(path.read_text())
    return {k: meta[k] for k in FEATURE_KEYS if k in meta}


def save_checkpoint(path: Path, model: SERModel, meta: dict) -> Path:
    """Write the model's config, weights and run metadata (method, direction, seed, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"config": asdict(model.config), "state_dict": model.state_dict(), "meta": meta}, path
    )
    return path


def add_feature_identity(path: Path, features_dir: Path) -> Path:
    """Record in checkpoint ``path`` (``meta["features"]``) the extractor of ``features_dir``.

    ``features_dir`` is the features folder of the corpus the model was trained on; the
    rewritten file differs from the original only by that key.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt["meta"] = ckpt["meta"] | {"features": feature_identity(features_dir)}
    torch.save(ckpt, path)
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[SERModel, dict]:
    """Rebuild a model saved by :func:`save_checkpoint`; returns it (eval mode) and its meta."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such checkpoint; run the train stage first")
    ckpt = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(ckpt, dict) or set(CHECKPOINT_KEYS) - set(ckpt):
        raise DataError(f"{path}: not an agcc checkpoint (needs config, state_dict and meta)")
    model = SERModel(SERConfig(**ckpt["config"])).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt["meta"]


class Posteriors(nn.Module):
    """An SER model as a function of one tensor: frames -> emotion posteriors.

    ``forward(x)``: x (B, T, D), or (B, T, L, D) for all-layer features, float32 frames of the
    extractor in ``metadata["features"]``, every frame real (no padding: give utterances one
    by one, or of equal length) -> softmax posteriors (B, C) in the order of
    ``metadata["classes"]`` (the emotions, or not_<e>, <e> for a one-vs-rest model).
    """

    def __init__(self, model: SERModel, metadata: dict[str, Any]) -> None:
        """Wrap ``model``; ``metadata`` travels with it (features, emotions, run)."""
        super().__init__()
        self.model = model
        self.metadata = metadata

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one input frame: (D,) or (L, D)."""
        c = self.model.config
        return (c.n_input_layers, c.input_dim) if c.n_input_layers > 1 else (c.input_dim,)

    @property
    def n_classes(self) -> int:
        """Number of emotions C."""
        return self.model.config.n_classes

    def forward(self, x: Tensor) -> Tensor:
        """Posteriors (B, C) of unpadded frames x (B, T, D) or (B, T, L, D)."""
        lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        return torch.softmax(self.model(x, lengths).logits, dim=1)  # (B, C)


def posterior_model(path: str | Path, device: str = "cpu") -> tuple[Posteriors, dict[str, Any]]:
    """A checkpoint as :class:`Posteriors` (eval mode) and its metadata (features, emotions...)."""
    model, meta = load_checkpoint(path, device)
    metadata = {k: meta[k] for k in RUN_KEYS if k in meta} | {"features": meta.get("features")}
    metadata.setdefault("classes", metadata.get("emotions"))
    return Posteriors(model, metadata).eval(), metadata
