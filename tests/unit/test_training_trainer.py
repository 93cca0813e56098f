"""The trainer in memory on toy corpora: determinism, learning, early stopping, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agcc.io.checkpoint import load_checkpoint, save_checkpoint
from agcc.params import PaccParams, TrainParams
from agcc.training.anchoring import Anchoring
from agcc.training.trainer import build_model, fit, input_stats, model_config, predict
from tests.unit.training_toy import toy_corpus

CPU = torch.device("cpu")
TP = TrainParams(
    batch_size=4,
    max_epochs=2,
    patience=5,
    lr=3e-3,
    d_model=8,
    n_heads=2,
    n_layers=1,
    fc_hidden=8,
    dropout=0.0,
    pseudo_label_threshold=0.0,
    device="cpu",
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread: the shared machine and reproducible float sums."""
    torch.set_num_threads(1)


def _train(seed: int, anchoring: Anchoring, tp: TrainParams = TP, **kw: object) -> tuple:
    """A fresh model fitted on the toy source (and target); returns model, result, epochs seen."""
    src, tgt = toy_corpus("src", 1), toy_corpus("tgt", 2)
    config = model_config(tp, src.frames.shape[1:], 4)
    model = build_model(config, seed, input_stats(src, src.rows("train")), CPU)
    seen = []
    second = tgt if anchoring.kind != "none" else None
    result = fit(model, src, second, anchoring, tp, seed, lambda s, e: seen.append((e, dict(s))))
    return model, result, seen


def test_same_seed_same_history_and_weights() -> None:
    a = Anchoring("triplet", "vowel", hyper=PaccParams())
    m1, r1, _ = _train(1, a)
    m2, r2, _ = _train(1, a)
    assert r1.history == r2.history and len(r1.history) == 2
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))
    _, r3, _ = _train(2, a)
    assert r3.history != r1.history


def test_loss_falls_on_separable_data() -> None:
    tp = TP.model_copy(update={"max_epochs": 4, "lr": 3e-2})
    _, result, _ = _train(0, Anchoring("none"), tp)
    losses = [h["loss_er"] for h in result.history]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < 0.7 * losses[0]
    assert result.best_val_uar >= 0.75


def test_on_epoch_sees_each_epoch_and_history_records_it() -> None:
    _, result, seen = _train(0, Anchoring("triplet", "vowel", hyper=PaccParams()))
    assert [e for e, _ in seen] == [1, 2]
    assert {"loss_er", "loss_anchor", "n_triplets", "labelled_share", "val_uar"} <= set(seen[0][1])
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.best_val_uar == max(h["val_uar"] for h in result.history)


def test_early_stopping_restores_the_best_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    import agcc.training.trainer as trainer

    scores = iter([0.5, 0.7, 0.6, 0.6, 0.9])
    monkeypatch.setattr(trainer, "uar", lambda *a: next(scores))
    tp = TP.model_copy(update={"max_epochs": 5, "patience": 2})
    _, result, _ = _train(0, Anchoring("none"), tp)
    assert (result.best_epoch, result.best_val_uar, len(result.history)) == (2, 0.7, 4)


def test_checkpoint_rebuilds_the_model_from_the_file_alone(tmp_path: Path) -> None:
    model, _, _ = _train(0, Anchoring("none"))
    path = save_checkpoint(tmp_path / "run" / "model.pt", model, {"method": "source_only"})
    loaded, meta = load_checkpoint(path)
    assert meta == {"method": "source_only"} and loaded.config == model.config
    tgt = toy_corpus("tgt", 2)
    rows = tgt.rows("test")
    np.testing.assert_array_equal(predict(loaded, tgt, rows, 8), predict(model, tgt, rows, 8))


def test_bad_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not an agcc checkpoint"):
        load_checkpoint(tmp_path / "x.pt")


def test_gamma_comes_from_the_methods_section_on_the_anchoring() -> None:
    no_anchor = Anchoring("triplet", "vowel", hyper=PaccParams(gamma=0.0))
    _, r0, _ = _train(1, no_anchor)
    _, r1, _ = _train(1, Anchoring("triplet", "vowel", hyper=PaccParams(gamma=1.0)))
    assert r0.history != r1.history  # the anchoring term's weight is the section's gamma
    assert Anchoring("none").gamma == 0.0
