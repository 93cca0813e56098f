"""The anchoring losses against values worked out by hand, their gradients and edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from agcc.losses import (
    coral,
    layer_similarity,
    linear_cka,
    mine_triplets,
    pseudo_label_mask,
    soft_triplet,
    soft_weights,
)


def _t(*rows: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64, requires_grad=True)


# soft_triplet -------------------------------------------------------------------------------


def test_triplet_hand_values_from_style_guide() -> None:
    a, p = _t((0.0, 0.0)), _t((1.0, 0.0))
    assert soft_triplet(a, p, _t((2.0, 0.0)), 1.0, alpha=1.0).item() == 0.0
    assert soft_triplet(a, p, _t((1.5, 0.0)), 1.0, alpha=1.0).item() == pytest.approx(0.5)


def test_triplet_soft_weight_shrinks_the_negative_distance() -> None:
    # max(0, 1 - 0.5 * 2 + 1) = 1
    loss = soft_triplet(_t((0.0, 0.0)), _t((1.0, 0.0)), _t((2.0, 0.0)), torch.tensor([0.5]), 1.0)
    assert loss.item() == pytest.approx(1.0)


def test_triplet_is_the_mean_over_triplets() -> None:
    a, p = _t((0.0, 0.0), (0.0, 0.0)), _t((1.0, 0.0), (1.0, 0.0))
    n = _t((2.0, 0.0), (1.5, 0.0))
    assert soft_triplet(a, p, n, 1.0, alpha=1.0).item() == pytest.approx(0.25)


def test_triplet_gradient_pulls_positive_and_pushes_negative() -> None:
    a, p, n = _t((0.0, 0.0)), _t((1.0, 0.0)), _t((1.5, 0.0))
    soft_triplet(a, p, n, 1.0, alpha=1.0).backward()
    # d/dp |p - a| = (p - a) / |p - a| = (1, 0); d/dn (-|n - a|) = -(1, 0)
    assert p.grad.tolist() == [[1.0, 0.0]]
    assert n.grad.tolist() == [[-1.0, 0.0]]
    assert a.grad.tolist() == [[0.0, 0.0]]


def test_inactive_triplet_has_zero_gradient() -> None:
    a, p, n = _t((0.0, 0.0)), _t((1.0, 0.0)), _t((3.0, 0.0))
    soft_triplet(a, p, n, 1.0, alpha=1.0).backward()
    assert p.grad.abs().sum().item() == 0.0


def test_no_triplet_gives_zero_loss_that_backpropagates() -> None:
    z = torch.zeros(0, 4, requires_grad=True)
    loss = soft_triplet(z, z, z, 1.0, alpha=0.3)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert z.grad is not None and z.grad.shape == (0, 4)


def test_triplet_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"equal shape.*\(1, 2\).*\(2, 2\)"):
        soft_triplet(torch.zeros(1, 2), torch.zeros(2, 2), torch.zeros(1, 2), 1.0, 0.3)


# soft_weights -------------------------------------------------------------------------------


def test_soft_weights_are_exp_of_minus_beta_distance() -> None:
    dist = torch.tensor([[0.0, 1.0, 5.0], [1.0, 0.0, 2.0], [5.0, 2.0, 0.0]])
    w = soft_weights(dist, torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2]), beta=0.2)
    assert w.tolist() == pytest.approx([math.exp(-0.2), math.exp(-1.0), math.exp(-0.4)])
    assert soft_weights(dist, torch.tensor([0]), torch.tensor([2]), beta=0.0).item() == 1.0


def test_soft_weights_need_a_square_matrix() -> None:
    with pytest.raises(ValueError, match=r"\(K, K\)"):
        soft_weights(torch.zeros(2, 3), torch.tensor([0]), torch.tensor([1]), 0.2)


# mine_triplets ------------------------------------------------------------------------------

# anchor 0 (group 0, emotion 0): positives pool {0, 2}, negative pool {1}
# anchor 1 (group 1, emotion 0): positive pool {1}, negatives pool {0, 2}
# anchor 2 (group 0, emotion 1): no positive (pool 3 is group 1) -> dropped
A_GROUPS, A_EMOTIONS = torch.tensor([0, 1, 0]), torch.tensor([0, 0, 1])
P_GROUPS, P_EMOTIONS = torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 0, 1])


def test_mining_picks_valid_positives_and_negatives_and_drops_the_rest() -> None:
    seen = set()
    for seed in range(40):
        gen = torch.Generator().manual_seed(seed)
        a, p, n = mine_triplets(A_GROUPS, A_EMOTIONS, P_GROUPS, P_EMOTIONS, gen)
        assert a.tolist() == [0, 1]
        assert p[0].item() in (0, 2) and n[0].item() == 1
        assert p[1].item() == 1 and n[1].item() in (0, 2)
        seen.add((p[0].item(), n[1].item()))
    assert seen == {(0, 0), (0, 2), (2, 0), (2, 2)}  # every candidate gets drawn


def test_mining_is_reproducible_with_a_seeded_generator() -> None:
    runs = [
        mine_triplets(A_GROUPS, A_EMOTIONS, P_GROUPS, P_EMOTIONS, torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    assert all(torch.equal(x, y) for x, y in zip(*runs, strict=True))


def test_mining_with_no_anchor_or_no_match_returns_empty() -> None:
    empty = torch.zeros(0, dtype=torch.long)
    a, p, n = mine_triplets(empty, empty, P_GROUPS, P_EMOTIONS)
    assert len(a) == len(p) == len(n) == 0
    a, _, _ = mine_triplets(torch.tensor([0]), torch.tensor([3]), P_GROUPS, P_EMOTIONS)
    assert len(a) == 0


# coral --------------------------------------------------------------------------------------


def test_coral_hand_value() -> None:
    # cov(a) = diag(2, 0), cov(b) = diag(0, 2): ||diag(2, -2)||_F^2 / (4 * 2^2) = 8 / 16
    a = _t((1.0, 0.0), (-1.0, 0.0))
    b = _t((0.0, 1.0), (0.0, -1.0))
    loss = coral(a, b)
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert a.grad.abs().sum().item() > 0


def test_coral_ignores_means_and_is_zero_for_equal_covariances() -> None:
    x = torch.randn(20, 3, dtype=torch.float64)
    assert coral(x, x + 5.0).item() == pytest.approx(0.0, abs=1e-12)
    y = torch.randn(20, 3, dtype=torch.float64)
    assert coral(x, 3 * y).item() > coral(x, y).item()


def test_coral_needs_two_rows() -> None:
    with pytest.raises(ValueError, match=">= 2 rows"):
        coral(torch.zeros(1, 3), torch.zeros(4, 3))


# linear CKA ---------------------------------------------------------------------------------


def test_linear_cka_hand_value() -> None:
    # x_c = (-1, 0, 1), y_c = (-11, -2, 13) / 3: (y.x)^2 / (|x|^2 |y|^2) = 64 / (2 * 294 / 9)
    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    y = torch.tensor([[1.0], [4.0], [9.0]], dtype=torch.float64)
    assert linear_cka(x, y).item() == pytest.approx(576 / 588)
    assert linear_cka(x, torch.tensor([[1.0], [-2.0], [1.0]], dtype=torch.float64)).item() == 0.0


def test_linear_cka_invariances_and_degenerate_input() -> None:
    x = torch.randn(30, 4, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    assert linear_cka(x, 3.0 * x @ q + 1.0).item() == pytest.approx(1.0)
    assert linear_cka(x, torch.ones(30, 2, dtype=torch.float64)).item() == 0.0


def test_layer_similarity_compares_covariance_structures_of_different_examples() -> None:
    gen = torch.Generator().manual_seed(0)
    scale = torch.tensor([3.0, 2.0, 1.0, 0.1, 0.1, 0.1], dtype=torch.float64)
    src = torch.randn(200, 6, generator=gen, dtype=torch.float64) * scale
    same = torch.randn(150, 6, generator=gen, dtype=torch.float64) * scale + 4.0
    other = torch.randn(150, 6, generator=gen, dtype=torch.float64) * scale.flip(0)
    assert layer_similarity(src, same).item() > 0.95
    assert layer_similarity(src, other).item() < 0.5


def test_layer_similarity_is_linear_cka_with_units_as_examples() -> None:
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(25, 5, generator=gen, dtype=torch.float64) @ torch.randn(
        5, 5, generator=gen, dtype=torch.float64
    )
    a_c, b_c = a - a.mean(dim=0), b - b.mean(dim=0)  # the (d, d) Gram form equals the definition
    assert layer_similarity(a, b).item() == pytest.approx(linear_cka(a_c.T, b_c.T).item())
    assert layer_similarity(a, torch.ones(7, 5, dtype=torch.float64)).item() == 0.0


# pseudo-labels ------------------------------------------------------------------------------


def test_pseudo_labels_keep_confident_predictions_only() -> None:
    probs = torch.tensor(
        [[0.7, 0.1, 0.1, 0.1], [0.3, 0.4, 0.2, 0.1], [0.0, 0.0, 0.6, 0.4]], requires_grad=True
    )
    labels, mask = pseudo_label_mask(probs, 0.6)
    assert labels.tolist() == [0, 1, 2] and mask.tolist() == [True, False, True]
    assert not labels.requires_grad
