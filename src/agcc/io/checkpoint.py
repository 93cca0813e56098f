"""model.pt of a train run: the SER model's config, weights and run metadata in one file.

The file carries its :class:`agcc.models.SERConfig`, so :func:`load_checkpoint` rebuilds the
model from the file alone.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from agcc.errors import DataError, MissingInputError
from agcc.models import SERConfig, SERModel

#: Keys of a checkpoint file.
CHECKPOINT_KEYS = ("config", "state_dict", "meta")


def save_checkpoint(path: Path, model: SERModel, meta: dict) -> Path:
    """Write the model's config, weights and run metadata (method, direction, seed, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"config": asdict(model.config), "state_dict": model.state_dict(), "meta": meta}, path
    )
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
