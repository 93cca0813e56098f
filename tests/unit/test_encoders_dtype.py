"""Feature extraction precision (features.dtype) and the DataLoader audio path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from agcc.encoders import HFEncoder, Item, read_batches, save_random_wav2vec2
from agcc.skips import SkipReport


def _waves(seed: int = 0) -> list[np.ndarray]:
    """Three voiced-like 16 kHz waves of 0.6-1.0 s."""
    rng = np.random.default_rng(seed)
    out = []
    for seconds in (1.0, 0.8, 0.6):
        t = np.arange(int(16000 * seconds)) / 16000
        wave = sum(np.sin(2 * np.pi * 120 * h * t) / h for h in range(1, 6))
        out.append((0.1 * wave + rng.normal(0, 0.01, len(t))).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised wav2vec2 (2 layers of width 32) with an attention mask."""
    return save_random_wav2vec2(tmp_path_factory.mktemp("w2v") / "tiny")


def test_bfloat16_frames_stay_within_tolerance_of_float32(tiny_model: Path) -> None:
    cpu = torch.device("cpu")
    waves = _waves()
    full = HFEncoder(str(tiny_model), -1, cpu, "float32")(waves)
    half = HFEncoder(str(tiny_model), -1, cpu, "bfloat16")(waves)
    for a, b in zip(full, half, strict=True):
        assert a.shape == b.shape and b.dtype == np.float32
        relative = np.linalg.norm(b - a) / np.linalg.norm(a)
        assert 0.0 < relative < 0.05  # bf16 differs, within the documented 5 %


def test_bfloat16_group_norm_model_stays_within_tolerance_and_batch_invariant(
    tmp_path: Path,
) -> None:
    # the masked group norm computes its statistics in float32 under bf16 autocast too
    folder = save_random_wav2vec2(tmp_path / "group", with_mask=False)
    cpu = torch.device("cpu")
    waves = _waves()
    full = HFEncoder(str(folder), -1, cpu, "float32")(waves)
    half = HFEncoder(str(folder), -1, cpu, "bfloat16")
    assert half.batch_invariant
    for i, (a, b) in enumerate(zip(full, half(waves), strict=True)):
        assert a.shape == b.shape and b.dtype == np.float32
        assert 0.0 < np.linalg.norm(b - a) / np.linalg.norm(a) < 0.05
        alone = half([waves[i]])[0]
        assert np.linalg.norm(b - alone) / np.linalg.norm(alone) < 1e-2  # measured <= 3e-4


def test_unknown_dtype_is_rejected(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="features.dtype must be one of.*got 'float16'"):
        HFEncoder(str(tiny_model), -1, torch.device("cpu"), "float16")


def test_worker_processes_read_the_same_batches_and_skips(tmp_path: Path) -> None:
    waves = _waves(1)
    items = []
    for i, wave in enumerate(waves):
        sf.write(tmp_path / f"u{i}.wav", wave, 16000, "PCM_16")
        items.append(Item(f"u{i}", str(tmp_path / f"u{i}.wav"), len(wave) / 16000))
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    items.append(Item("bad", str(tmp_path / "bad.wav"), 1.0))
    batches = [np.array([0, 3]), np.array([1, 2])]
    runs = {}
    for workers in (0, 1):
        skips = SkipReport("features")
        runs[workers] = (list(read_batches(items, batches, skips, workers)), skips.skips)
    (threaded, skips_0), (loaded, skips_1) = runs[0], runs[1]
    assert [(s, i) for s, i, _ in loaded] == [(2, ["u0"]), (2, ["u1", "u2"])]
    assert [(s, i) for s, i, _ in threaded] == [(s, i) for s, i, _ in loaded]
    for (_, _, a), (_, _, b) in zip(threaded, loaded, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert [s.item for s in skips_0] == [s.item for s in skips_1] == ["bad"]
