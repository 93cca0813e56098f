"""The trainer in memory on toy corpora: determinism, learning, early stopping, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agcc.errors import ConfigError
from agcc.io.checkpoint import load_checkpoint, save_checkpoint
from agcc.params import AgccParams, LaccParams, PaccParams, TrainParams
from agcc.training.anchoring import Anchoring
from agcc.training.batches import make_batch
from agcc.training.trainer import (
    build_model,
    fit,
    input_stats,
    model_config,
    predict,
    target_probs,
)
from tests.unit.training_toy import all_layer_corpus, tiny_train_params, toy_corpus

CPU = torch.device("cpu")
TP = tiny_train_params(n_layers=1, dropout=0.0)


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
    keys = {"loss_er", "loss_anchor", "n_triplets", "n_anchors", "labelled_share", "val_uar"}
    assert keys | {"labelled_segment_share", "w_mean", "w_std"} <= set(seen[0][1])
    assert seen[0][1]["w_mean"] == 1.0 and seen[0][1]["w_std"] == 0.0  # pa_cc: w = 1
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
    assert loaded.config.positional == "sinusoidal"  # the train stage's models use it
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


def test_ag_cc_epochs_log_common_pairs_and_soft_weights() -> None:
    d = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 1.5], [2.0, 1.5, 0.0]])
    common = torch.ones(6, 3, dtype=torch.bool)
    common[0] = False
    a = Anchoring("triplet", "cluster", d, common, hyper=AgccParams())
    _, result, _ = _train(1, a)
    first = result.history[0]
    assert first["n_common_pairs"] == 15.0 and first["n_triplets"] > 0
    assert 0.0 < first["w_mean"] < 1.0 and first["w_std"] > 0.0
    assert first["n_anchors"] >= first["n_triplets"]


def test_pseudo_labels_come_from_an_eval_mode_pass_and_training_mode_is_kept() -> None:
    src, tgt = toy_corpus("src", 1), toy_corpus("tgt", 2)
    tp = TP.model_copy(update={"dropout": 0.5})
    config = model_config(tp, src.frames.shape[1:], 4)
    model = build_model(config, 0, input_stats(src, src.rows("train")), CPU)
    batch = make_batch(
        [(src, src.rows("train")[:3], True), (tgt, tgt.rows("train")[:4], False)], CPU
    )
    model.train()
    probs = target_probs(model, batch)
    assert model.training and not probs.requires_grad
    again = target_probs(model, batch)
    torch.testing.assert_close(probs, again, rtol=0, atol=0)  # no dropout: deterministic
    rows = tgt.rows("train")[:4]
    np.testing.assert_allclose(probs.numpy(), predict(model, tgt, rows, 8), rtol=1e-5, atol=1e-6)


# la_cc ---------------------------------------------------------------------------------------

#: Two encoder layers, so that top_m = 1 selects; dropout 0 as in TP.
TP2 = TP.model_copy(update={"n_layers": 2, "max_epochs": 3, "patience": 10, "lr": 1e-2})


def test_la_cc_trains_other_weights_than_source_only_from_the_same_seed() -> None:
    lacc = Anchoring("coral", hyper=LaccParams(gamma=1000.0, top_m=1, warmup_epochs=1))
    m_so, r_so, _ = _train(1, Anchoring("none"), TP2)
    m_la, r_la, seen = _train(1, lacc, TP2)
    # the warm-up epoch is source_only's first epoch, bit for bit (same seed, same batches)
    assert r_la.history[0] == r_so.history[0] | {"warmup": 1.0}
    assert [h["warmup"] for h in r_la.history] == [1.0, 0.0, 0.0, 0.0]
    assert r_la.best_epoch > 1 and r_la.anchoring.layers in ((0,), (1,))
    assert len(r_la.anchoring.similarity) == 2
    anchored = r_la.history[1:]
    assert all(
        h["coral"] > 0 and h["gamma_coral"] == pytest.approx(1000 * h["coral"]) for h in anchored
    )
    assert "coral" in seen[-1][1]  # the per-epoch stats (MLflow step metrics) carry it too
    # CORAL changed the training: la_cc is not source_only. With gamma 0 the target rows in the
    # batches leave the weights as source_only's up to float rounding (other padded shapes).
    m_0, _, _ = _train(1, Anchoring("coral", hyper=lacc.hyper.model_copy(update={"gamma": 0})), TP2)
    assert _max_diff(m_0, m_so) < 1e-4 < 1e-2 < _max_diff(m_la, m_so)


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """The largest absolute difference between two models' weights."""
    sb = b.state_dict()
    return max(float((v - sb[k]).abs().max()) for k, v in a.state_dict().items())


def test_la_cc_top_m_must_select_among_the_encoder_layers() -> None:
    lacc = Anchoring("coral", hyper=LaccParams(top_m=2))
    with pytest.raises(ConfigError, match=r"train.la_cc.top_m = 2 .* 2 SER encoder"):
        _train(1, lacc, TP2)


def test_la_cc_on_upstream_layers_chooses_them_before_training_and_needs_no_warm_up() -> None:
    from agcc.training.anchoring import AGInfo, method_anchoring

    src, tgt = all_layer_corpus("src", 1, (1.0, 1.0)), all_layer_corpus("tgt", 2, (1.0, 1.6))
    ag = AGInfo(3, np.zeros((3, 3)), 0.1, 30.0)
    hyper = LaccParams(gamma=1000.0, top_m=1, warmup_epochs=3)
    anchoring = method_anchoring("la_cc", src, tgt, ag, False, CPU, hyper)
    assert anchoring.site == "input" and anchoring.layers == (0,)  # layer 1 is distorted
    config = model_config(TP, src.frames.shape[1:], 4)  # n_layers 1: not what top_m counts
    model = build_model(config, 1, input_stats(src, src.rows("train")), CPU)
    result = fit(model, src, tgt, anchoring, TP, 1)
    assert [h["epoch"] for h in result.history] == [1, 2]  # no warm-up with upstream layers
    assert "warmup" not in result.history[0] and result.history[0]["coral"] > 0
    assert result.anchoring is anchoring
