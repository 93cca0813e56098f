"""The one-vs-rest binary models: their labels, their class weights, a fit through the trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agcc.training.anchoring import Anchoring
from agcc.training.data import binary_view
from agcc.training.trainer import (
    balanced_class_weight,
    build_model,
    fit,
    input_stats,
    model_config,
)
from tests.unit.training_toy import tiny_train_params, toy_corpus


def test_binary_view_relabels_one_emotion_against_the_rest() -> None:
    data = toy_corpus()
    data.labels[0] = -1  # unknown labels stay unknown
    view = binary_view(data, 2)
    assert view.labels[0] == -1
    assert ((view.labels[1:] == 1) == (data.labels[1:] == 2)).all()
    assert set(np.unique(view.labels[1:])) == {0, 1}
    assert view.frames is data.frames and data.labels.max() == 3  # shared, not relabelled


def test_balanced_class_weight_by_hand() -> None:
    w = balanced_class_weight(np.array([0, 0, 0, 1]), 2)
    assert w.tolist() == pytest.approx([4 / 6, 2.0])
    with pytest.raises(ValueError, match=r"no training example: counts \[3.0, 0.0\]"):
        balanced_class_weight(np.array([0, 0, 0]), 2)


def test_a_binary_model_fits_through_the_same_trainer() -> None:
    tp = tiny_train_params(max_epochs=8, patience=8, dropout=0.0)
    src = binary_view(toy_corpus("src", 0), 1)
    rows = src.rows("train")
    weight = balanced_class_weight(src.labels[rows], 2)
    config = model_config(tp, src.frames.shape[1:], 2)
    model = build_model(config, 1, input_stats(src, rows), torch.device("cpu"))
    result = fit(model, src, None, Anchoring("none"), tp, 1, class_weight=weight)
    assert model.config.n_classes == 2 and len(result.history) == 8
    assert result.best_val_uar > 0.5  # the toy classes are separable
