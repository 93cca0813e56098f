"""Anchoring: which segments may anchor, triplet constraints, and the method registry."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest
import torch

from agcc.errors import ConfigError
from agcc.overlap import cluster_shares, common_clusters, overlap
from agcc.params import (
    ALL_METHODS,
    AgccParams,
    HardAgParams,
    LaccParams,
    PaccParams,
    TrainParams,
)
from agcc.training.anchoring import (
    METHODS,
    TRIPLET_METHODS,
    AGInfo,
    Anchoring,
    check_top_m,
    choose_input_layers,
    common_pair_mask,
    coral_inputs,
    coral_term,
    epoch_means,
    method_anchoring,
    method_builder,
    pair_counts,
    top_layers,
    triplet_candidates,
    triplet_term,
)
from agcc.training.batches import Batch, make_batch
from agcc.training.trainer import build_model, input_stats, model_config
from tests.unit.training_toy import all_layer_corpus, toy_corpus

T = torch.tensor


def _batch() -> Batch:
    """2 source utterances (labels 0, 1) and 2 target ones (labels 1, 0), segments by hand.

    segment:   0  1  2  3 | 4  5  6  7  8
    row:       0  0  1  1 | 2  2  2  3  3      (rows 2, 3 are the target)
    cluster:   0  1  0  2 | 0  1  2  0  1
    vowel:     3  3  4  4 | 3  4  4  3  3
    """
    return Batch(
        x=torch.zeros(4, 6, 2),
        lengths=T([6, 6, 6, 6]),
        labels=T([0, 1, 1, 0]),
        n_first=2,
        seg_row=T([0, 0, 1, 1, 2, 2, 2, 3, 3]),
        seg_lo=T([0, 2, 0, 2, 0, 2, 4, 0, 2]),
        seg_hi=T([2, 4, 2, 4, 2, 4, 6, 2, 4]),
        seg_vowel=T([3, 3, 4, 4, 3, 4, 4, 3, 3]),
        seg_cluster=T([0, 1, 0, 2, 0, 1, 2, 0, 1]),
    )


def _pairs(*pairs: tuple[int, int], k: int = 3) -> torch.Tensor:
    """A (6, k) common-pair mask with the given (vowel, cluster) pairs set."""
    mask = torch.zeros(6, k, dtype=torch.bool)
    for v, c in pairs:
        mask[v, c] = True
    return mask


def test_anchors_are_target_segments_of_labelled_utterances_in_common_pairs() -> None:
    b = _batch()
    common = _pairs((3, 0), (4, 1), (4, 0), (3, 2))  # (4, 2) is not common
    ok = T([True, False])  # target row 3 has no confident label
    anc, pool, groups, emotion = triplet_candidates(
        b, Anchoring("triplet", "cluster", common=common), T([1, 0]), ok
    )
    assert anc.tolist() == [4, 5]  # segment 6 is (4, 2), not common; 7, 8 unlabelled
    assert pool.tolist() == [0, 1, 2, 3]  # every source segment
    assert groups.tolist() == b.seg_cluster.tolist()
    assert emotion.tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]


def test_without_common_mask_every_labelled_target_segment_anchors_grouped_by_vowel() -> None:
    b = _batch()
    anc, _, groups, _ = triplet_candidates(b, Anchoring("triplet", "vowel"), T([1, 0]), T([1, 1]))
    assert anc.tolist() == [4, 5, 6, 7, 8]
    assert groups.tolist() == b.seg_vowel.tolist()


def test_triplets_pair_same_group_positives_and_other_group_negatives_of_one_emotion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import agcc.training.anchoring as anchoring_mod

    seen = {}
    real = anchoring_mod.mine_triplets

    def spy(*args: torch.Tensor, **kw: object) -> tuple:
        out = real(*args, **kw)
        seen["args"], seen["out"] = args, out
        return out

    monkeypatch.setattr(anchoring_mod, "mine_triplets", spy)
    b = _batch()
    h = torch.randn(4, 6, 3)
    common = _pairs((3, 0), (4, 1), (3, 1))
    a = Anchoring("triplet", "cluster", common=common, oracle=True, hyper=AgccParams())
    loss, stats = triplet_term(None, h, b, a, TrainParams(), torch.Generator().manual_seed(0))
    ag, ae, pg, pe = seen["args"][:4]
    ia, ip, ineg = seen["out"]
    assert stats["n_triplets"] == len(ia) > 0 and stats["labelled_share"] == 1.0
    assert stats["n_anchors"] == 4 and stats["n_common_pairs"] == 3.0  # segments 4, 5, 7, 8
    assert stats["labelled_segment_share"] == 1.0 and stats["w_sum"] == len(ia)  # no distance
    assert (ag[ia] == pg[ip]).all() and (ae[ia] == pe[ip]).all()  # positive: same group, emotion
    assert (ag[ia] != pg[ineg]).all() and (ae[ia] == pe[ineg]).all()  # negative: other group
    assert torch.isfinite(loss)


def test_pseudo_labels_below_the_threshold_give_no_anchor() -> None:
    b = _batch()
    probs = torch.full((2, 4), 0.25)  # uniform: max probability 0.25
    tp = TrainParams(pseudo_label_threshold=0.6)
    a = Anchoring("triplet", "vowel", hyper=PaccParams())
    loss, stats = triplet_term(probs, torch.randn(4, 6, 3), b, a, tp, torch.Generator())
    assert stats["n_triplets"] == stats["n_anchors"] == stats["labelled_share"] == 0.0
    assert stats["labelled_segment_share"] == 0.0 and float(loss) == 0.0
    sure = torch.tensor([[0.1, 0.7, 0.1, 0.1], [0.25] * 4])  # only target row 2 is confident
    _, stats = triplet_term(sure, torch.randn(4, 6, 3), b, a, tp, torch.Generator())
    assert stats["labelled_share"] == 0.5 and stats["labelled_segment_share"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="target probabilities"):
        triplet_term(None, torch.randn(4, 6, 3), b, a, tp, torch.Generator())


def test_epoch_means_pool_w_over_the_epochs_triplets() -> None:
    totals = {"loss_er": 3.0, "n_triplets": 4.0, "w_sum": 2.0, "w_sumsq": 1.5}
    out = epoch_means(totals, 2)
    assert out["loss_er"] == 1.5 and out["n_triplets"] == 2.0 and out["w_mean"] == 0.5
    assert out["w_std"] == pytest.approx((1.5 / 4 - 0.25) ** 0.5) and "w_sum" not in out
    assert "w_mean" not in epoch_means({"n_triplets": 0.0, "w_sum": 0.0, "w_sumsq": 0.0}, 1)


def test_coral_term_sums_the_anchored_layers_and_is_zero_without_any() -> None:
    pooled = torch.randn(3, 8, 4)
    assert float(coral_term(pooled, 4, ())) == 0.0
    both = coral_term(pooled, 4, (0, 2))
    assert torch.isclose(both, coral_term(pooled, 4, (0,)) + coral_term(pooled, 4, (2,)))


def test_registry_keys_are_the_params_methods() -> None:
    field = TrainParams.model_fields["methods"].annotation  # tuple[Literal[...], ...]
    (literal, _) = typing.get_args(field)
    assert set(METHODS) == set(typing.get_args(literal)) | {"upper_bound"} == set(ALL_METHODS)
    assert set(TRIPLET_METHODS) <= set(METHODS)


def test_unknown_method_raises_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown method 'ag_c'.*source_only.*upper_bound"):
        method_builder("ag_c")
    with pytest.raises(ValueError, match="known methods"):
        method_anchoring(
            "ag_c", toy_corpus(), toy_corpus(), _ag(), False, torch.device("cpu"), AgccParams()
        )


def _ag(**kw: object) -> AGInfo:
    """AG information with k = 3, a symmetric distance matrix and threshold 30 %."""
    d = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.5], [2.0, 1.5, 0.0]])
    return AGInfo(3, d, 0.1, 30.0, **kw)


def test_each_method_gets_its_anchoring() -> None:
    src, tgt, cpu = toy_corpus("a", 1), toy_corpus("b", 2), torch.device("cpu")
    ag = _ag(vowel_distance=np.ones((6, 6)))
    tp = TrainParams()
    kinds = {m: method_anchoring(m, src, tgt, ag, True, cpu, tp.hyper(m)) for m in METHODS}
    assert {m: a.kind for m, a in kinds.items()} == {
        "source_only": "none",
        "pa_cc": "triplet",
        "hard_ag": "triplet",
        "la_cc": "coral",
        "ag_cc": "triplet",
        "upper_bound": "none",
    }
    assert kinds["pa_cc"].distance is None and kinds["pa_cc"].group == "vowel"
    assert kinds["hard_ag"].distance.shape == (6, 6) and kinds["ag_cc"].group == "cluster"
    assert kinds["ag_cc"].common.dtype == torch.bool and kinds["ag_cc"].common.shape == (6, 3)
    assert [m for m, a in kinds.items() if a.oracle] == list(TRIPLET_METHODS)
    assert all(a.hyper is tp.hyper(m) for m, a in kinds.items())  # each method's own section
    assert kinds["la_cc"].param("top_m") == 1 and kinds["ag_cc"].param("beta") == 0.2
    assert kinds["la_cc"].site == "encoder" and kinds["la_cc"].layers == ()  # chosen in fit


def test_a_method_needs_its_own_section() -> None:
    src, tgt, cpu = toy_corpus("a", 1), toy_corpus("b", 2), torch.device("cpu")
    with pytest.raises(ConfigError, match=r"'ag_cc' needs its train.ag_cc section.*PaccParams"):
        method_anchoring("ag_cc", src, tgt, _ag(), False, cpu, PaccParams())
    with pytest.raises(ConfigError, match="train.la_cc section.*got none"):
        method_anchoring("la_cc", src, tgt, _ag(), False, cpu, None)
    with pytest.raises(ConfigError, match="needs 'beta'"):
        Anchoring("triplet", "cluster", hyper=PaccParams()).param("beta")


def test_hard_ag_without_vowel_distances_is_an_error() -> None:
    with pytest.raises(ValueError, match="vowel_distance"):
        method_anchoring(
            "hard_ag", toy_corpus(), toy_corpus(), _ag(), False, torch.device("cpu"), HardAgParams()
        )


def test_common_pairs_are_per_vowel_overlaps_of_train_and_val_segments() -> None:
    src, tgt = toy_corpus("a", 1), toy_corpus("b", 2)
    counts = [pair_counts(c, 3) for c in (src, tgt)]
    mask = common_pair_mask(src, tgt, 3, 30.0)
    for v in range(6):
        p = cluster_shares(np.stack([counts[0][v], counts[1][v]]))
        np.testing.assert_array_equal(mask[v], common_clusters(overlap(p[0], p[1]), 30.0))
    in_fit = np.isin(src.splits[src.segments.row], ("train", "val"))
    assert counts[0].sum() == in_fit.sum() < len(src.segments.row)  # test segments left out


def test_common_pairs_ignore_the_test_split() -> None:
    src, tgt = toy_corpus("a", 1), toy_corpus("b", 2)
    before = common_pair_mask(src, tgt, 3, 30.0)
    test = tgt.splits[tgt.segments.row] == "test"
    tgt.segments.cluster[test] = 0
    tgt.segments.vowel[test] = 0
    np.testing.assert_array_equal(common_pair_mask(src, tgt, 3, 30.0), before)
    tgt.segments.cluster[~test] = 0  # train and val segments do count
    assert not np.array_equal(common_pair_mask(src, tgt, 3, 30.0), before)


# la_cc ---------------------------------------------------------------------------------------


def test_top_m_must_be_smaller_than_the_layers_available() -> None:
    check_top_m(1, 2, "x")
    with pytest.raises(ConfigError, match=r"train.la_cc.top_m = 2 .* the 2 SER encoder"):
        check_top_m(2, 2, "SER encoder")
    assert top_layers([0.2, 0.9, 0.5, 0.9], 2) == (1, 3) and top_layers([0.1, 0.3], 1) == (1,)


def test_all_layer_features_anchor_the_upstream_layers_most_alike_before_training() -> None:
    # layer 0 and 2 of the target keep the source's covariance structure, layer 1 distorts it
    src = all_layer_corpus("a", 1, (1.0, 1.0, 1.0))
    tgt = all_layer_corpus("b", 2, (1.0, 1.6, 1.0))
    layers, sims = choose_input_layers(src, tgt, 2)
    assert layers == (0, 2) and len(sims) == 3 and sims[1] < min(sims[0], sims[2])
    with pytest.raises(ConfigError, match=r"top_m = 3 .* 3 upstream"):
        choose_input_layers(src, tgt, 3)
    a = method_anchoring("la_cc", src, tgt, _ag(), False, torch.device("cpu"), LaccParams())
    assert (a.kind, a.site, len(a.layers), len(a.similarity)) == ("coral", "input", 1, 3)


def test_coral_on_upstream_layers_reaches_the_input_projection() -> None:
    src, tgt = all_layer_corpus("a", 1, (1.0, 1.3)), all_layer_corpus("b", 2, (1.0, 1.6))
    tp = TrainParams(d_model=8, n_heads=2, n_layers=1, fc_hidden=8, dropout=0.0)
    config = model_config(tp, src.frames.shape[1:], 4)
    assert config.n_input_layers == 2
    model = build_model(config, 0, input_stats(src, src.rows("train")), torch.device("cpu"))
    rows_s, rows_t = src.rows("train")[:5], tgt.rows("train")[:6]
    batch = make_batch([(src, rows_s, True), (tgt, rows_t, False)], torch.device("cpu"))
    out = model(batch.x, batch.lengths)
    assert out.input_pooled.shape == (2, 11, 8)
    first = src.frames[src.start[rows_s[0]] :][: src.length[rows_s[0]]]  # (T, 2, D)
    x = (torch.as_tensor(first, dtype=torch.float32) - model.in_mean) / model.in_std
    torch.testing.assert_close(out.input_pooled[:, 0], model.proj(x.mean(dim=0)))
    anchoring = Anchoring("coral", layers=(1,), site="input", hyper=LaccParams())
    loss = coral_term(coral_inputs(out, anchoring), batch.n_first, anchoring.layers)
    loss.backward()
    assert loss.item() > 0 and model.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None or not p.grad.any() for p in model.layers.parameters())
    with pytest.raises(ValueError, match="all-layer"):
        coral_inputs(dataclasses.replace(out, input_pooled=None), anchoring)
