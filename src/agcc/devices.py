"""Compute devices: the one rule that turns a ``device`` parameter into a torch device."""

from __future__ import annotations

import torch

from agcc.errors import ConfigError


def resolve_device(device: str, key: str = "device") -> torch.device:
    """``auto`` -> cuda when available, else cpu; a CUDA device without CUDA is an error.

    ``key`` is the parameter's path (``train.device``), quoted in the error.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}={device!r} but torch finds no CUDA device; use 'auto'")
    return torch.device(device)
