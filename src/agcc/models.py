"""The SER model of AG-CC (docs/method.md section 7): pure nn.Modules and pooling, no I/O.

frame features (B, T, D), or (B, T, L, D) combined by a learned softmax-weighted layer sum
-> input standardisation (statistics of the training corpus, stored as buffers)
-> Linear(D, d_model) (+ sinusoidal positional encoding, ``SERConfig.positional``)
-> n_layers transformer encoder layers (key padding mask) -> h(t)
-> utterance embedding = masked mean of h -> 4 fully connected layers -> emotion logits.

Segment embeddings z (the anchors, positives and negatives of the AG loss) are masked means of
h(t) over a segment's frames, L2-normalised (:func:`pool_segments`). For the layer-anchoring
baseline (CORAL on pooled layers) the masked mean of every encoder layer's output is returned
too and, with all-layer (B, T, L, D) inputs, every input layer's masked mean after
standardisation and the shared input projection (:attr:`SEROutput.input_pooled`). The means
ignore frame order, so order reaches the model only through the positional encoding added to
the frame projection (the train stage's models use it; the config's default "none" keeps older
checkpoints rebuilding as they were trained).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: Positional information the encoder may get (:attr:`SERConfig.positional`).
POSITIONAL = ("none", "sinusoidal")


def sinusoidal_encoding(n_frames: int, d_model: int, device: torch.device | None = None) -> Tensor:
    """(T, d) Transformer sinusoidal positional encoding: sin/cos of t / 10000^(2i / d)."""
    t = torch.arange(n_frames, dtype=torch.float32, device=device)[:, None]  # (T, 1)
    i = torch.arange(0, d_model, 2, dtype=torch.float32, device=device)  # (ceil(d / 2),)
    angle = t / torch.pow(10000.0, i / d_model)  # (T, ceil(d / 2))
    pe = torch.zeros(n_frames, d_model, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe


@dataclass(frozen=True)
class SERConfig:
    """Shape and size of an :class:`SERModel`."""

    input_dim: int  # D, the frame feature width
    n_classes: int  # number of emotions
    n_input_layers: int = 1  # L > 1: inputs are (B, T, L, D), combined by a learned weighted sum
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    fc_hidden: int = 128
    dropout: float = 0.1
    ff_mult: int = 4  # feed-forward width of the encoder layers = ff_mult * d_model
    attn_dropout: float = 0.0  # dropout on the attention probabilities (see SERModel)
    # "sinusoidal": positional encoding added to the frame projection; "none" (the default, so
    # checkpoints saved before the field existed rebuild as they were trained)
    positional: str = "none"
    # > 1: a strided convolution (kernel = stride) after the frame projection shortens the
    # sequence the encoder sees by this factor; segments map to the strided frames they touch
    frame_stride: int = 1

    def __post_init__(self) -> None:
        """Reject sizes the modules cannot be built with, quoting them."""
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model}, "
                f"n_heads={self.n_heads}"
            )
        if self.positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {POSITIONAL}, got {self.positional!r}")
        names = (
            "input_dim",
            "n_classes",
            "n_input_layers",
            "n_layers",
            "fc_hidden",
            "frame_stride",
        )
        for name in names:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class SEROutput:
    """What one forward pass returns."""

    logits: Tensor  # (B, C)
    frames: Tensor  # (B, T, d_model) h(t) of the last encoder layer
    mask: Tensor  # (B, T) True on real (non-padding) frames
    layer_pooled: Tensor  # (n_layers, B, d_model) masked mean of each encoder layer's output
    # (L, B, d_model) with (B, T, L, D) inputs: each input layer's standardised frames, averaged
    # over the real frames and projected by ``proj``. The projection is linear and the layer
    # weights sum to 1, so proj(weighted sum) = weighted sum of these per-layer projections:
    # they are each upstream layer's contribution to the encoder input. None for (B, T, D).
    input_pooled: Tensor | None = None
    frame_stride: int = 1  # input frames per row of ``frames`` (segments: :func:`stride_span`)


def length_mask(lengths: Tensor, max_len: int) -> Tensor:
    """Boolean mask (B, T) that is True for the first lengths[b] frames of row b."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """Mean of h (B, T, d) over the frames where mask (B, T) is True: (B, d)."""
    weights = mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
    return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def stride_span(seg_lo: Tensor, seg_hi: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Input-frame spans [lo, hi) as the spans of the strided frames they touch."""
    if stride == 1:
        return seg_lo, seg_hi
    lo = torch.div(seg_lo, stride, rounding_mode="floor")
    return lo, torch.div(seg_hi + stride - 1, stride, rounding_mode="floor")


def pool_segments(h: Tensor, seg_row: Tensor, seg_lo: Tensor, seg_hi: Tensor) -> Tensor:
    r"""L2-normalised segment embeddings z_s = normalise(mean_{t in [lo_s, hi_s)} h[row_s, t]).

    Computed from prefix sums, c[b, t] = sum_{u < t} h[b, u], as (c[row, hi] - c[row, lo]) /
    (hi - lo): one cumulative sum over the batch, however many segments there are.

    Args:
        h: (B, T, d) frame embeddings.
        seg_row: (S,) batch row (utterance) of each segment.
        seg_lo, seg_hi: (S,) first and one-past-last frame, 0 <= lo < hi <= T.

    Returns:
        (S, d) unit-norm embeddings.
    """
    n_frames = h.shape[1]
    if len(seg_row) and (
        bool((seg_lo < 0).any()) or bool((seg_hi <= seg_lo).any()) or int(seg_hi.max()) > n_frames
    ):
        raise ValueError(f"segment frames must satisfy 0 <= lo < hi <= {n_frames}")
    csum = nn.functional.pad(h.cumsum(dim=1), (0, 0, 1, 0))  # (B, T + 1, d), csum[:, 0] = 0
    total = csum[seg_row, seg_hi] - csum[seg_row, seg_lo]  # (S, d)
    z = total / (seg_hi - seg_lo).to(h.dtype)[:, None]
    return nn.functional.normalize(z, dim=1)  # (S, d)


class LayerSum(nn.Module):
    """Learned softmax-weighted sum over the L layers of (B, T, L, D) features."""

    def __init__(self, n_layers: int) -> None:
        """Start from equal weights."""
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_layers))

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, L, D) -> (B, T, D)."""
        return torch.einsum("btld,l->btd", x, torch.softmax(self.logits, dim=0))


class SERModel(nn.Module):
    """Transformer SER model with the utterance head, segment pooling and pooled layers.

    ``dropout`` applies to the encoder's residual and feed-forward paths and to the head;
    dropout on the attention probabilities is separate (``attn_dropout``, 0 by default): on CPU
    it materialises a random (B, heads, T, T) mask per layer and triples the encoder's cost.
    """

    def __init__(self, config: SERConfig) -> None:
        """Build the modules from a config."""
        super().__init__()
        self.config = config
        c = config
        stats_shape = (c.n_input_layers, c.input_dim) if c.n_input_layers > 1 else (c.input_dim,)
        self.register_buffer("in_mean", torch.zeros(stats_shape))
        self.register_buffer("in_std", torch.ones(stats_shape))
        self.layer_sum = LayerSum(c.n_input_layers) if c.n_input_layers > 1 else None
        self.proj = nn.Linear(c.input_dim, c.d_model)
        self.downsample = None
        if c.frame_stride > 1:
            self.downsample = nn.Conv1d(c.d_model, c.d_model, c.frame_stride, c.frame_stride)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                c.d_model,
                c.n_heads,
                dim_feedforward=c.ff_mult * c.d_model,
                dropout=c.dropout,
                batch_first=True,
            )
            for _ in range(c.n_layers)
        )
        for layer in self.layers:
            layer.self_attn.dropout = c.attn_dropout
        dims = [c.d_model, c.fc_hidden, c.fc_hidden, c.fc_hidden]
        blocks: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            blocks += [nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(c.dropout)]
        self.head = nn.Sequential(*blocks, nn.Linear(c.fc_hidden, c.n_classes))

    def set_input_stats(self, mean: Tensor, std: Tensor) -> None:
        """Standardise inputs with these per-dimension statistics (of the training corpus)."""
        if mean.shape != self.in_mean.shape or std.shape != self.in_std.shape:
            raise ValueError(
                f"input stats must have shape {tuple(self.in_mean.shape)}, got "
                f"{tuple(mean.shape)} and {tuple(std.shape)}"
            )
        self.in_mean.copy_(mean)
        self.in_std.copy_(std.clamp_min(1e-5))

    def encode(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """h (B, T, d), mask (B, T), pooled layer outputs (n_layers, B, d), input_pooled.

        ``input_pooled`` (L, B, d) with (B, T, L, D) inputs (:attr:`SEROutput.input_pooled`):
        the masked mean of each standardised input layer, projected by ``proj`` (the mean is
        taken before the linear projection: the same result, cheaper); None otherwise.
        """
        x = (x - self.in_mean) / self.in_std  # (B, T, D) or (B, T, L, D)
        mask = length_mask(lengths, x.shape[1])  # (B, T)
        in_pooled = None
        if self.layer_sum is not None:
            weights = mask.to(x.dtype)[..., None, None]  # (B, T, 1, 1)
            mean = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)  # (B, L, D)
            in_pooled = self.proj(mean).transpose(0, 1)  # (L, B, d)
            x = self.layer_sum(x)  # (B, T, L, D) -> (B, T, D)
        h = self.proj(x)  # (B, T, d)
        if self.downsample is not None:
            h, mask = self._downsample(h, mask, lengths)
        if self.config.positional == "sinusoidal":
            h = h + sinusoidal_encoding(h.shape[1], h.shape[2], h.device)
        pooled = []
        for layer in self.layers:
            # padding frames are zeroed so no value there (the fused eval kernel leaves them
            # unspecified) can leak into a pooled mean through 0 * NaN
            h = layer(h, src_key_padding_mask=~mask).masked_fill(~mask[..., None], 0.0)
            pooled.append(masked_mean(h, mask))
        return h, mask, torch.stack(pooled), in_pooled

    def _downsample(self, h: Tensor, mask: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, d) -> (B, ceil(T / s), d) by the strided convolution, and the new mask.

        Padding frames are zeroed first, so an utterance's output does not depend on how much
        padding its batch has; a last, partial window sees zeros beyond the utterance.
        """
        s = self.config.frame_stride
        h = h.masked_fill(~mask[..., None], 0.0)
        pad = -h.shape[1] % s
        h = nn.functional.pad(h, (0, 0, 0, pad)).transpose(1, 2)  # (B, d, T + pad)
        h = self.downsample(h).transpose(1, 2)  # (B, T', d)
        return h, length_mask(torch.div(lengths + s - 1, s, rounding_mode="floor"), h.shape[1])

    def forward(self, x: Tensor, lengths: Tensor) -> SEROutput:
        """x: (B, T, D) or (B, T, L, D) zero-padded frames; lengths: (B,) real frame counts."""
        expected = 4 if self.layer_sum is not None else 3
        if x.ndim != expected:
            raise ValueError(
                f"expected {expected}-d input for n_input_layers={self.config.n_input_layers}, "
                f"got shape {tuple(x.shape)}"
            )
        h, mask, pooled, in_pooled = self.encode(x, lengths)
        logits = self.head(masked_mean(h, mask))  # (B, C)
        return SEROutput(
            logits=logits,
            frames=h,
            mask=mask,
            layer_pooled=pooled,
            input_pooled=in_pooled,
            frame_stride=self.config.frame_stride,
        )
