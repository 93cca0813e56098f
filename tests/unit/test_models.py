"""The SER model: shapes, padding invariance, segment pooling, the learned layer sum."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from agcc.models import (
    SERConfig,
    SERModel,
    masked_mean,
    pool_segments,
    sinusoidal_encoding,
    stride_span,
)

CFG = SERConfig(
    input_dim=6, n_classes=4, d_model=8, n_heads=2, n_layers=3, fc_hidden=8, dropout=0.0
)


def _model(config: SERConfig = CFG) -> SERModel:
    torch.manual_seed(0)
    return SERModel(config).eval()


def _padded(lengths: list[int], dim: int = 6) -> torch.Tensor:
    """Random frames (B, T, dim), zero beyond each length."""
    x = torch.randn(len(lengths), max(lengths), dim)
    for b, n in enumerate(lengths):
        x[b, n:] = 0.0
    return x


def test_output_shapes() -> None:
    out = _model()(_padded([7, 4]), torch.tensor([7, 4]))
    assert out.logits.shape == (2, 4)
    assert out.frames.shape == (2, 7, 8)
    assert out.mask.tolist()[1] == [True] * 4 + [False] * 3
    assert out.layer_pooled.shape == (3, 2, 8)


def test_padding_does_not_change_a_row() -> None:
    model = _model()
    x = _padded([9, 3])
    with torch.no_grad():
        both = model(x, torch.tensor([9, 3]))
        alone = model(x[1:, :3], torch.tensor([3]))
    assert torch.allclose(both.logits[1], alone.logits[0], atol=1e-5)
    assert torch.allclose(both.layer_pooled[:, 1], alone.layer_pooled[:, 0], atol=1e-5)
    assert both.frames[1, 3:].abs().sum() == 0  # padding frames are zeroed


def test_input_stats_standardise_the_features() -> None:
    model = _model()
    x = _padded([5])
    with torch.no_grad():
        ref = model(x, torch.tensor([5])).logits
        model.set_input_stats(torch.full((6,), 2.0), torch.full((6,), 3.0))
        shifted = model(3.0 * x + 2.0, torch.tensor([5])).logits
    assert torch.allclose(ref, shifted, atol=1e-5)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        model.set_input_stats(torch.zeros(5), torch.ones(5))


def test_layer_sum_input() -> None:
    cfg = SERConfig(
        input_dim=6,
        n_classes=4,
        n_input_layers=3,
        d_model=8,
        n_heads=2,
        n_layers=1,
        fc_hidden=8,
        dropout=0.0,
    )
    model = _model(cfg)
    x = torch.randn(2, 5, 3, 6)  # (B, T, L, D)
    out = model(x, torch.tensor([5, 5]))
    assert out.logits.shape == (2, 4)
    out.logits.sum().backward()
    assert model.layer_sum.logits.grad is not None
    with pytest.raises(ValueError, match="4-d input"):
        model(torch.randn(2, 5, 6), torch.tensor([5, 5]))


def test_bad_config_names_the_values() -> None:
    with pytest.raises(ValueError, match="d_model=10, n_heads=4"):
        SERConfig(input_dim=6, n_classes=4, d_model=10, n_heads=4)


def test_masked_mean_ignores_padding() -> None:
    h = torch.tensor([[[1.0], [3.0], [100.0]]])  # (1, 3, 1)
    mask = torch.tensor([[True, True, False]])
    assert masked_mean(h, mask).item() == 2.0


def test_pool_segments_hand_value_and_gradient() -> None:
    h = torch.zeros(2, 4, 2)
    h[0, :, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    h[1, :, 1] = torch.tensor([1.0, 1.0, 5.0, 7.0])
    h.requires_grad_(True)
    z = pool_segments(h, torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([3, 4]))
    # segment 0: mean of frames 1, 2 of row 0 = (2.5, 0) -> (1, 0); segment 1: (0, 6) -> (0, 1)
    assert z.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    z.sum().backward()
    touched = h.grad.abs().sum(dim=2)
    assert touched[0, 1] > 0 and touched[0, 2] > 0
    assert touched[0, 0] == 0 and touched[0, 3] == 0  # frames outside the segment get nothing


def test_pool_segments_unnormalised_mean() -> None:
    h = torch.tensor([[[3.0, 4.0], [3.0, 4.0], [0.0, 0.0]]])
    z = pool_segments(h, torch.tensor([0]), torch.tensor([0]), torch.tensor([2]))
    assert z[0].tolist() == pytest.approx([0.6, 0.8])


def test_pool_segments_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="lo < hi"):
        pool_segments(torch.zeros(1, 4, 2), torch.tensor([0]), torch.tensor([2]), torch.tensor([2]))


def test_segment_embeddings_backpropagate_into_the_model() -> None:
    model = _model()
    out = model(_padded([6, 6]), torch.tensor([6, 6]))
    z = pool_segments(out.frames, torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([3, 5]))
    (z[0] - z[1]).norm().backward()
    assert model.proj.weight.grad.abs().sum() > 0


def _permuted(positional: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of one utterance and of its frames in reversed order."""
    cfg = SERConfig(
        input_dim=6,
        n_classes=4,
        d_model=8,
        n_heads=2,
        n_layers=2,
        fc_hidden=8,
        dropout=0.0,
        positional=positional,
    )
    model, x = _model(cfg), _padded([7])
    with torch.no_grad():
        return model(x, torch.tensor([7])).logits, model(x.flip(1), torch.tensor([7])).logits


def test_positional_encoding_makes_the_output_depend_on_frame_order() -> None:
    ref, flipped = _permuted("sinusoidal")
    assert not torch.allclose(ref, flipped, atol=1e-4)
    ref, flipped = _permuted("none")  # without it, attention and means ignore order
    assert torch.allclose(ref, flipped, atol=1e-5)


def test_positional_encoding_values_and_config_check() -> None:
    pe = sinusoidal_encoding(5, 7)
    assert pe.shape == (5, 7) and torch.equal(pe[0, 0::2], torch.zeros(4))
    assert torch.allclose(pe[3, 0], torch.sin(torch.tensor(3.0)))
    assert torch.equal(pe[0, 1::2], torch.ones(3))
    with pytest.raises(ValueError, match="positional must be one of"):
        SERConfig(input_dim=6, n_classes=4, positional="learned")


STRIDED = dataclasses.replace(CFG, frame_stride=2)


def test_frame_stride_shortens_the_sequence_and_padding_does_not_change_a_row() -> None:
    model = _model(STRIDED)
    x = _padded([7, 4])
    out = model(x, torch.tensor([7, 4]))
    assert out.frames.shape == (2, 4, 8) and out.frame_stride == 2
    assert out.mask.tolist() == [[True] * 4, [True, True, False, False]]
    alone = model(x[1:, :4], torch.tensor([4]))  # the short row without the long one's padding
    assert torch.allclose(alone.logits, out.logits[1:], atol=1e-5)
    assert torch.allclose(alone.frames[0], out.frames[1, :2], atol=1e-5)


def test_stride_span_covers_every_strided_frame_a_segment_touches() -> None:
    lo, hi = stride_span(torch.tensor([0, 3, 4]), torch.tensor([3, 4, 9]), 2)
    assert lo.tolist() == [0, 1, 2] and hi.tolist() == [2, 2, 5]
    same = stride_span(torch.tensor([1]), torch.tensor([2]), 1)
    assert same[0].tolist() == [1] and same[1].tolist() == [2]


def test_frame_stride_must_be_positive() -> None:
    with pytest.raises(ValueError, match="frame_stride must be >= 1, got 0"):
        dataclasses.replace(CFG, frame_stride=0)
