"""A toy in-memory corpus for the training unit tests (no files)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from agcc.params import TrainParams
from agcc.training.data import CorpusData, Segments

SPLITS = {"train": 6, "val": 2, "test": 2}  # utterances per class


def toy_corpus(
    name: str = "toy",
    seed: int = 0,
    n_classes: int = 4,
    dim: int = 6,
    sep: float = 3.0,
    k: int = 3,
    splits: dict[str, int] | None = None,
) -> CorpusData:
    """Utterances of 5-14 frames at sep * onehot(label) + noise, 2 two-frame segments each."""
    rng = np.random.default_rng(seed)
    split_list, labels = [], []
    for split, n in (splits or SPLITS).items():
        for c in range(n_classes):
            split_list += [split] * n
            labels += [c] * n
    labels_a = np.array(labels, dtype=np.int64)
    length = rng.integers(5, 15, len(labels_a))
    start = np.concatenate([[0], np.cumsum(length)[:-1]])
    proto = sep * np.eye(n_classes, dim)[np.repeat(labels_a, length)]
    frames = (proto + rng.normal(0, 1, (int(length.sum()), dim))).astype(np.float16)
    row = np.repeat(np.arange(len(labels_a)), 2)
    lo = (rng.random(len(row)) * (length[row] - 2)).astype(np.int64)
    segments = Segments(
        seg_id=np.array([f"{name}#{i}" for i in range(len(row))]),
        row=row,
        lo=lo,
        hi=lo + 2,
        vowel=rng.integers(0, 6, len(row)),
        cluster=rng.integers(0, k, len(row)),
        ptr=np.arange(0, len(row) + 1, 2),
    )
    return CorpusData(
        name=name,
        utt_ids=np.array([f"{name}_{i}" for i in range(len(labels_a))]),
        labels=labels_a,
        splits=np.array(split_list),
        start=start,
        length=length,
        frames=frames,
        segments=segments,
        mouth_val={},
        features_path=Path(f"{name}/features.npz"),
        manifest_path=Path(f"{name}/manifest.csv"),
    )


def all_layer_corpus(name: str, seed: int, scales: tuple[float, ...]) -> CorpusData:
    """:func:`toy_corpus` with (F, L, D) frames, as from ``features.layer: all``.

    Layer l is the toy frames with dimension j scaled by ``scales[l] ** j`` (1.0: the toy frames
    themselves), so a scale other than the source's changes that layer's covariance structure.
    """
    toy = toy_corpus(name, seed)
    frames = toy.frames.astype(np.float32)
    dims = np.arange(frames.shape[1])
    layers = np.stack([frames * s**dims for s in scales], axis=1)
    return dataclasses.replace(toy, frames=layers.astype(np.float16))


def tiny_train_params(**changes: object) -> TrainParams:
    """Train params shrunk for in-memory tests (2 epochs, batch 4, an 8-wide model, cpu)."""
    base = {
        "batch_size": 4,
        "max_epochs": 2,
        "patience": 5,
        "lr": 3e-3,
        "d_model": 8,
        "n_heads": 2,
        "fc_hidden": 8,
        "pseudo_label_threshold": 0.0,
        "device": "cpu",
    }
    return TrainParams(**(base | changes))
