"""Frozen acoustic frame encoders at 50 frames/s (docs/method.md section 6) and the encoding loop.

Audio is read by :func:`agcc.io.audio.read_audio` (mono, 16 kHz, soxr HQ). Every encoder
returns frames on one grid: frame t of an utterance covers [t/50, (t+1)/50) s, and an utterance
of n samples has F(n) = floor(n/320 + 1/2) frames (the duration in 20 ms frames, rounded; a tail
shorter than 10 ms gets no frame of its own).

Encoders:

- ``logmel`` (the demo default, no checkpoint): log-mel filterbank energies, ``features.n_mels``
  HTK-mel triangles over 0-8 kHz, 25 ms Hann window centred on each 20 ms frame interval
  (samples [320t - 40, 320t + 360), zeros outside the audio), 512-point FFT, power spectrum,
  log(E + 1e-6) (1e-6 sits near the 16-bit noise floor of a full-scale unit). Computed in torch
  (``torch.stft`` plus our own mel matrix; torchaudio has no CPU build here).
- ``wav2vec2``: any transformers Wav2Vec2 / HuBERT / WavLM checkpoint (hub name or local folder,
  ``HF_HUB_OFFLINE`` respected), frozen, in eval mode, ``output_hidden_states=True``; the hidden
  state ``features.layer`` (an index into ``hidden_states``: 0 = CNN output after projection,
  -1 = last layer) or all of them (``layer: all`` -> (F, L, D) for a learned weighted sum). The
  CNN gives floor((n - 400) / 320) + 1 frames for wav2vec2-base's receptive field of 400 samples,
  i.e. one or two frames fewer than F(n): frames are cut or padded (repeating the last frame) to
  F(n), so every encoder lands on the same grid; the receptive field of frame t is centred 2.5 ms
  after the grid frame's centre.

Per-utterance mean/variance normalisation of the frames (``features.utterance_norm``) is off by
default: channel differences between corpora are part of the cross-corpus problem the anchoring
loss addresses, and normalising them away per utterance would hide it (wav2vec2's own feature
extractor still normalises the waveform, as the checkpoints expect).

Precision (``features.dtype``): ``float32`` (default) or ``bfloat16``, which runs the
transformers forward pass under bf16 autocast; on a tiny random wav2vec2 the bf16 frames lie
within 5 % (relative L2 per utterance) of the float32 ones (``tests/unit/test_encoders_dtype.py``).
On CUDA float32 matmuls use TF32 tensor cores (:func:`allow_tf32`), and audio is decoded and
resampled in DataLoader worker processes (:func:`read_batches`) while the GPU runs, the batches
travelling through pinned memory; on CPU one thread reads the next batch. ``logmel`` always
computes in float32.

Batching (:func:`make_batches`, :func:`encoder_batches`): utterances are sorted by duration
and cut, longest first, into runs whose padded audio (size x longest) stays within
``features.batch_seconds``; an utterance longer than that gets a batch of its own. How far a
batch may mix lengths depends on whether the encoder's frames depend on the batch:

- Batch-invariant encoders only waste compute on padding, so a batch is bounded by its share
  of real audio: at least 90 % of its padded audio (:data:`MIN_FILL`; padded <= real / 0.9).
  They are ``logmel`` (frames computed per utterance, bit-identical whatever the batching) and
  the transformers models: layer-normalised CNNs (wav2vec2-large-lv60, WavLM-large) with the
  attention mask their feature extractor asks for, and group-normalised ones (wav2vec2-base,
  HuBERT-base, WavLM-base; below). Length-sorted neighbours differ by milliseconds, so batches
  fill to ``batch_seconds``: on 2,000 durations drawn uniformly from 1.3-5 s (CREMA-D-like)
  with ``batch_seconds`` 240, 28 batches of 224.7 s of audio on average (93.6 %; the fewest
  possible is 27), 2.4 % padding; on 7,442 (CREMA-D's size) 99 batches of 236.1 s (98.4 %).
  The rule before it bounded every utterance at >= 90 % of its batch's longest: 29 batches of
  217.0 s (90.4 %); on a sparse corpus, 400 durations of 1.5-4 s (the throughput benchmark's
  range), 67 % of 240 s against 47 %.
- Group-normalised CNNs (``feat_extract_norm`` "group": the first conv layer's GroupNorm has
  one group per channel and normalises it over time) feel the padding as transformers runs
  them: zero-padded without a mask (their feature extractors return none), the padding shifts
  the group-norm statistics and, through the 128-frame positional convolution and the
  attention, the other frames (a random wav2vec2-base: a 0.5 s utterance batched with a 3 s
  one changed by 88 %, relative L2); a mask reaches the attention but not those statistics
  (still 53 %). So :class:`HFEncoder` puts a :class:`MaskedGroupNorm` in place of that GroupNorm
  when it loads the model (:func:`swap_group_norm`; same weights), which normalises each
  utterance's own first-layer frames, floor((n - 400) / 5) + 1 for wav2vec2-base, by
  themselves, and always passes the attention mask (built from the lengths), so that the
  positional convolution and the attention ignore the padding too. Frames past an utterance's
  end only reach frames that are cut. Batched frames then equal one-by-one frames to float
  precision: <= 1.3e-6 (relative L2) on the random wav2vec2-base, <= 7e-7 on tiny Wav2Vec2,
  HuBERT and WavLM models, at up to 99 % padding (``tests/unit/test_feature_batches.py``).
- A model whose frames still feel the padding (a layer-normalised CNN whose feature extractor
  returns no mask, or a group-normalised one of an unexpected structure, which is logged) keeps
  every utterance >= 99 % of its batch's longest (:data:`MIN_FILL_UNMASKED`, <= 1 % padding
  each): correctness beats speed. The greedy cut gives the fewest batches this bound allows (a
  test compares it with a dynamic programme), so their fill is set by how dense the corpus is
  in durations: 49.9 s of audio per batch on the 2,000 durations above (21 % of 240 s), 155 s
  (65 %) on 7,442, 14.5 s (6 %) on the 400 of 1.5-4 s; wav2vec2-base had these batches before
  :class:`MaskedGroupNorm`.

:func:`extract` logs the batch statistics (:func:`batch_stats`); the throughput benchmark prints
them next to the throughput.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from agcc.devices import resolve_device
from agcc.errors import MissingInputError
from agcc.framing import HOP, SAMPLE_RATE, WIN, grid_frames
from agcc.io.audio import audio_duration, read_audio
from agcc.io.features import FrameWriter
from agcc.params import FeatureParams
from agcc.skips import InputError, SkipReport

log = logging.getLogger(__name__)

N_FFT = 512
LOG_FLOOR = 1e-6
#: Batch-invariant encoders: a batch's real audio is at least this share of its padded audio
#: (size x longest), a bound on compute spent on padding (their frames do not feel it) ...
MIN_FILL = 0.9
#: ... and models whose frames feel the padding (no attention mask, or a group-normalised CNN
#: of an unexpected structure): every utterance is at least this share of its batch's longest
#: (<= ~1 % padding each, a bound on correctness).
MIN_FILL_UNMASKED = 0.99


def fit_to_grid(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """Cut ``frames`` (F, ...) to ``n_frames`` or pad it by repeating its last frame."""
    if len(frames) >= n_frames:
        return frames[:n_frames]
    pad = np.repeat(frames[-1:], n_frames - len(frames), axis=0)
    return np.concatenate([frames, pad])


def utterance_normalise(frames: np.ndarray) -> np.ndarray:
    """Per-utterance mean/variance normalisation over frames: (x - mean_t) / (std_t + 1e-5)."""
    mean = frames.mean(axis=0, keepdims=True)
    return (frames - mean) / (frames.std(axis=0, keepdims=True) + 1e-5)


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: m = 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Inverse HTK mel scale: f = 700 (10^(m / 2595) - 1)."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE, f_min: float = 0.0
) -> torch.Tensor:
    r"""Triangular HTK-mel filterbank W (n_fft // 2 + 1, n_mels), peak 1, no area normalisation.

    The n_mels + 2 edges f_0 < ... < f_{n_mels+1} are equally spaced in mel between f_min and
    sample_rate / 2; filter m rises linearly from f_m to 1 at its centre f_{m+1} and falls to 0
    at f_{m+2}: W[k, m] = max(0, min((f_k - f_m) / (f_{m+1} - f_m),
    (f_{m+2} - f_k) / (f_{m+2} - f_{m+1}))) at the FFT bin frequencies f_k = k sr / n_fft.
    Mel energies of a power spectrum P (..., n_fft // 2 + 1) are P @ W.
    """
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(sample_rate / 2), n_mels + 2))
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # (n_freq,)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]  # (n_mels,) each
    rise = (bins[:, None] - lo) / (mid - lo)
    fall = (hi - bins[:, None]) / (hi - mid)
    weights = np.clip(np.minimum(rise, fall), 0.0, None)  # (n_freq, n_mels)
    if (weights.sum(axis=0) == 0).any():
        raise ValueError(f"n_mels={n_mels} leaves empty mel filters at n_fft={n_fft}; use fewer")
    return torch.from_numpy(weights.astype(np.float32))


class LogMelEncoder:
    """Log-mel filterbank frames (F, n_mels) on the 50 frames/s grid."""

    name = "logmel"
    n_layers = 1
    min_fill = MIN_FILL
    batch_invariant = True  # frames per utterance: the same whatever the batch

    def __init__(self, n_mels: int, device: torch.device, all_layers: bool = False) -> None:
        """Build the window and mel matrix on ``device``; ``all_layers`` gives (F, 1, n_mels)."""
        self.dim = n_mels
        self.all_layers = all_layers
        self.device = device
        self.window = torch.hann_window(WIN, periodic=True, device=device)
        self.fbank = mel_filterbank(n_mels).to(device)

    def inputs(self, waves: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Zero-padded batch: sample j of a wave sits at column j + 96, so that (with torch.stft's
        centred 400-in-512 window) STFT frame t covers samples [320t - 40, 320t + 360)."""
        left = (N_FFT - WIN) // 2 + (WIN - HOP) // 2  # 56 + 40 = 96
        n_max = max(grid_frames(len(w)) for w in waves)
        width = max(left + max(len(w) for w in waves), N_FFT + (n_max - 1) * HOP)
        x = torch.zeros((len(waves), width), dtype=torch.float32)  # (B, L)
        for i, w in enumerate(waves):
            x[i, left : left + len(w)] = torch.from_numpy(w)
        return {"x": x.to(self.device)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel energies (B, F, n_mels) of a padded batch (B, L)."""
        spec = torch.stft(x, N_FFT, HOP, WIN, self.window, center=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (B, n_freq, F)
        return torch.log(power.transpose(1, 2) @ self.fbank + LOG_FLOOR)  # (B, F, n_mels)

    def __call__(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Frames (F(n_i), n_mels) float32 of each wave ((F(n_i), 1, n_mels) with all_layers)."""
        with torch.inference_mode():
            out = self.forward(**self.inputs(waves)).cpu().numpy()  # (B, F, n_mels)
        if self.all_layers:
            out = out[:, :, None, :]  # (B, F, 1, n_mels): one "layer"
        return [out[i, : grid_frames(len(w))] for i, w in enumerate(waves)]


class ModelNotFoundError(MissingInputError):
    """A transformers checkpoint is neither a local folder nor reachable on the hub."""


def _how_to_get(name: str, err: Exception) -> str:
    """Error text saying how to make checkpoint ``name`` available."""
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    if name.startswith((".", "/", "~")) or Path(name).exists():
        return (
            f"features.model {name!r}: no usable local model folder (it needs config.json, the "
            "weights and preprocessor_config.json, as written by save_pretrained() of the model "
            f"and its feature extractor). Original error: {first}"
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    return (
        f"features.model {name!r}: not a local folder and not in the Hugging Face cache"
        f"{' (HF_HUB_OFFLINE is set)' if offline else ''}. Get it once with "
        f"`huggingface-cli download {name}` (or `hf download {name}`) on a machine with network "
        "access, or set features.model in params.yaml to a local folder written by "
        f"save_pretrained(). Original error: {first}"
    )


def conv_output_length(n_samples: torch.Tensor, kernels: list[int], strides: list[int]) -> Any:
    """Frames out of the CNN feature encoder: L <- floor((L - k) / s) + 1 per conv layer."""
    for k, s in zip(kernels, strides, strict=True):
        n_samples = torch.div(n_samples - k, s, rounding_mode="floor") + 1
    return n_samples


class MaskedGroupNorm(torch.nn.Module):
    """:class:`torch.nn.GroupNorm` whose statistics run over each utterance's own frames.

    Wraps (and shares the parameters of) the group norm of a wav2vec2-style CNN's first layer,
    which normalises each channel group over time. With :attr:`lengths` set (the frames of each
    utterance of the current batch), utterance i's first lengths[i] frames are normalised by
    the wrapped module's own function on those frames alone, so they come out as if the
    utterance were encoded by itself, whatever padding follows; the frames after them are set to
    0 (in the CNN they only reach frames past the utterance's end, which the attention mask
    hides and the encoder cuts). Without lengths it is the wrapped module; with no padding
    (every length = T) it computes the same.
    """

    def __init__(self, norm: torch.nn.GroupNorm) -> None:
        """Wrap ``norm``; :attr:`lengths` starts unset."""
        super().__init__()
        self.norm = norm
        self.lengths: list[int] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``x`` (B, C, T): one group norm per utterance over its own frames."""
        if self.lengths is None:
            return self.norm(x)
        if len(self.lengths) != len(x):
            raise ValueError(f"{len(self.lengths)} lengths for a batch of {len(x)}")
        norm, out = self.norm, None
        for i, n in enumerate(self.lengths):
            n = min(int(n), x.shape[-1])
            y = torch.nn.functional.group_norm(
                x[i : i + 1, :, :n], norm.num_groups, norm.weight, norm.bias, norm.eps
            )
            if out is None:  # the dtype group_norm gives (float32 under CUDA autocast)
                out = y.new_empty(x.shape)
            out[i, :, :n] = y[0]
            if n < x.shape[-1]:
                out[i, :, n:] = 0
        return out


#: Normalisations over time: besides the first layer's group norm none may sit in the CNN.
_OVER_TIME = (
    torch.nn.GroupNorm,
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
)


def swap_group_norm(model: torch.nn.Module) -> MaskedGroupNorm | None:
    """Put a :class:`MaskedGroupNorm` in place of the group norm of ``model``'s first CNN layer.

    Expects the transformers Wav2Vec2 / HuBERT / WavLM structure: ``feature_extractor.
    conv_layers[0]`` with a ``conv`` Conv1d and a ``layer_norm`` GroupNorm, and no other
    normalisation over time in the CNN. Returns the new module (the model now holds it), or None
    where the structure differs (the model is left as it was).
    """
    layers = getattr(getattr(model, "feature_extractor", None), "conv_layers", None)
    if layers is None or len(layers) == 0:
        return None
    first = layers[0]
    norm = getattr(first, "layer_norm", None)
    over_time = [m for m in model.feature_extractor.modules() if isinstance(m, _OVER_TIME)]
    if not (
        isinstance(norm, torch.nn.GroupNorm)
        and isinstance(getattr(first, "conv", None), torch.nn.Conv1d)
        and over_time == [norm]
    ):
        return None
    masked = MaskedGroupNorm(norm)
    first.layer_norm = masked
    return masked


class HFEncoder:
    """A frozen transformers speech encoder (Wav2Vec2, HuBERT, WavLM) returning hidden states."""

    name = "wav2vec2"

    def __init__(
        self, model_name: str, layer: int | str, device: torch.device, dtype: str = "float32"
    ) -> None:
        """Load the feature extractor and model (errors say how to get a missing model).

        ``dtype`` "bfloat16" runs the forward pass under bf16 autocast (weights stay float32,
        frames come back float32); on CUDA float32 matmuls use TF32 either way.
        """
        from transformers import AutoFeatureExtractor, AutoModel

        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(model_name)
            self.model = AutoModel.from_pretrained(model_name)
        except OSError as e:
            raise ModelNotFoundError(_how_to_get(model_name, e)) from e
        cfg = self.model.config
        if not hasattr(cfg, "conv_kernel") or getattr(self.extractor, "sampling_rate", 0) != 16000:
            raise ValueError(
                f"features.model {model_name!r} ({type(self.model).__name__}) is not a 16 kHz "
                "wav2vec2-style speech encoder (Wav2Vec2, HuBERT, WavLM)"
            )
        self.model.eval().requires_grad_(False).to(device)
        self.device = device
        if dtype not in AUTOCAST:
            raise ValueError(f"features.dtype must be one of {sorted(AUTOCAST)}, got {dtype!r}")
        self.autocast = AUTOCAST[dtype]
        if device.type == "cuda":
            allow_tf32()
        self.n_layers = int(cfg.num_hidden_layers) + 1  # len(hidden_states)
        self.dim = int(cfg.hidden_size)
        self.layer = check_layer(layer, self.n_layers)
        self.kernels, self.strides = list(cfg.conv_kernel), list(cfg.conv_stride)
        self._batching_rule(model_name)

    def _batching_rule(self, model_name: str) -> None:
        """Set ``group_norm``, ``use_mask``, ``batch_invariant`` and ``min_fill``.

        A group-normalised CNN gets a :class:`MaskedGroupNorm` (its statistics over each
        utterance's own frames) and the attention mask, which makes its frames batch-invariant;
        a layer-normalised one is batch-invariant with the mask its feature extractor asks for.
        Otherwise (no mask, or a CNN of another structure) frames feel the padding: 1 % rule.
        """
        extractor_mask = bool(getattr(self.extractor, "return_attention_mask", False))
        group = getattr(self.model.config, "feat_extract_norm", "group") == "group"
        self.group_norm = swap_group_norm(self.model) if group else None
        if group and self.group_norm is None:
            log.warning(
                "features.model %r: group-normalised CNN of an unexpected structure (no "
                "feature_extractor.conv_layers[0].layer_norm GroupNorm, or another norm over "
                "time); its frames feel the padding, so batches keep every utterance within "
                "%.0f %% padding",
                model_name,
                100 * (1 - MIN_FILL_UNMASKED),
            )
        self.use_mask = extractor_mask or self.group_norm is not None
        self.batch_invariant = self.use_mask and (not group or self.group_norm is not None)
        self.min_fill = MIN_FILL if self.batch_invariant else MIN_FILL_UNMASKED

    def first_layer_frames(self, attention_mask: torch.Tensor) -> list[int]:
        """Frames of the first CNN layer per utterance, floor((n - k0) / s0) + 1 (at least 1),
        from the sample mask (B, L)."""
        n = attention_mask.sum(-1).tolist()
        k, s = self.kernels[0], self.strides[0]
        return [max(1, (int(m) - k) // s + 1) for m in n]

    def inputs(self, waves: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Waveforms normalised one by one by the feature extractor, zero-padded (B, L), and
        where the model takes one the attention mask (B, L), built from the lengths."""
        normed = [
            self.extractor(w, sampling_rate=SAMPLE_RATE, return_tensors="np")["input_values"][0]
            for w in waves
        ]
        x = torch.zeros((len(waves), max(len(w) for w in waves)), dtype=torch.float32)
        mask = torch.zeros(x.shape, dtype=torch.long)  # (B, L)
        for i, w in enumerate(normed):
            x[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
            mask[i, : len(w)] = 1
        out = {"input_values": to_device(x, self.device)}
        if self.use_mask:
            out["attention_mask"] = to_device(mask, self.device)
        return out

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Selected hidden states (B, F, D), or all of them (B, F, L, D).

        With an ``attention_mask`` a group-normalised CNN's first-layer statistics run over each
        utterance's own frames (:class:`MaskedGroupNorm`); without one it is the stock model.
        """
        mask = inputs.get("attention_mask")
        if self.group_norm is not None and mask is not None:
            self.group_norm.lengths = self.first_layer_frames(mask)
        try:
            with torch.autocast(
                self.device.type, dtype=torch.bfloat16, enabled=self.autocast is not None
            ):
                hidden = self.model(**inputs, output_hidden_states=True).hidden_states
        finally:
            if self.group_norm is not None:
                self.group_norm.lengths = None  # only for this batch
        if self.layer == "all":
            return torch.stack(hidden, dim=2)  # (B, F, L, D)
        return hidden[self.layer]  # (B, F, D)

    def __call__(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Frames (F(n_i), D) or (F(n_i), L, D) float32 of each wave; padding frames cut."""
        with torch.inference_mode():
            out = self.forward(**self.inputs(waves)).float().cpu().numpy()
        lengths = torch.tensor([len(w) for w in waves])
        n_model = conv_output_length(lengths, self.kernels, self.strides).tolist()
        return [
            fit_to_grid(out[i, : max(1, n_model[i])], grid_frames(len(w)))
            for i, w in enumerate(waves)
        ]


#: features.dtype -> the autocast dtype of the model's forward pass (None: plain float32).
AUTOCAST: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16}


def allow_tf32() -> None:
    """Let CUDA float32 matmuls and convolutions use TF32 tensor cores (process-wide)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; to CUDA through pinned memory, asynchronously."""
    if device.type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def check_layer(layer: int | str, n_layers: int) -> int | str:
    """``layer`` if it indexes ``n_layers`` hidden states (negative allowed) or is "all"."""
    if layer == "all":
        return layer
    if not isinstance(layer, int) or not -n_layers <= layer < n_layers:
        raise ValueError(
            f"features.layer must be 'all' or an index into the {n_layers} hidden states "
            f"(-{n_layers}..{n_layers - 1}), got {layer!r}"
        )
    return layer


class Encoder(Protocol):
    """What the stage needs from an encoder."""

    name: str
    dim: int
    n_layers: int
    min_fill: float
    batch_invariant: bool

    def __call__(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Frames of each wave on the 50 frames/s grid."""
        ...


def build_encoder(fp: FeatureParams) -> Encoder:
    """The encoder ``fp`` asks for, on ``fp.device``."""
    device = resolve_device(fp.device, "features.device")
    if fp.encoder == "logmel":
        return LogMelEncoder(fp.n_mels, device, all_layers=fp.layer == "all")
    return HFEncoder(fp.model, fp.layer, device, fp.dtype)


def make_batches(
    seconds: np.ndarray, batch_seconds: float, min_fill: float = MIN_FILL, per_item: bool = False
) -> list[np.ndarray]:
    """Indices of utterances grouped by length, longest first.

    Sorted by duration (ties by index), a batch grows while its padded audio (size x longest)
    stays within ``batch_seconds`` and, by default (batch-invariant encoders), its real audio
    stays >= ``min_fill`` x its padded audio; with ``per_item`` (models without an attention
    mask) while each member is >= ``min_fill`` x the batch's longest instead. A longer utterance
    gets a batch of its own. Either bound only tightens as shorter members join, so the greedy
    cut fills each batch as far as its bound allows; with ``per_item`` every run inside an
    allowed batch is allowed too, so it also gives the fewest batches (the fullest on average).
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    order = np.argsort(-seconds, kind="stable")
    batches, current, real = [], [], 0.0
    for i in order:
        if current:
            longest = seconds[current[0]]
            padded = (len(current) + 1) * longest  # with utterance i
            if per_item:
                filled = seconds[i] >= min_fill * longest
            else:
                filled = real + seconds[i] >= min_fill * padded
            if padded > batch_seconds or not filled:
                batches.append(np.array(current))
                current, real = [], 0.0
        current.append(int(i))
        real += seconds[i]
    if current:
        batches.append(np.array(current))
    return batches


def encoder_batches(
    seconds: np.ndarray, batch_seconds: float, encoder: Encoder
) -> list[np.ndarray]:
    """:func:`make_batches` with ``encoder``'s rule: the batch-level fill bound if its frames do
    not depend on the batch, the per-utterance padding bound if they do."""
    per_item = not getattr(encoder, "batch_invariant", False)
    return make_batches(seconds, batch_seconds, encoder.min_fill, per_item=per_item)


def batch_stats(seconds: np.ndarray, batches: list[np.ndarray]) -> dict[str, Any]:
    """How full ``batches`` are: their number, real audio seconds per batch (mean, min), padded
    audio seconds (size x longest) per batch (mean), padding share of all padded audio, and the
    largest padding share of one utterance ((longest - own) / longest)."""
    seconds = np.asarray(seconds, dtype=np.float64)
    if not batches:
        return {k: 0 if k == "n_batches" else 0.0 for k in BATCH_STATS}
    real = np.array([seconds[b].sum() for b in batches])
    padded = np.array([len(b) * seconds[b].max() for b in batches])
    values = (
        len(batches),
        real.mean(),
        real.min(),
        padded.mean(),
        1.0 - real.sum() / padded.sum(),
        max(1.0 - seconds[b].min() / seconds[b].max() for b in batches),
    )
    return {
        k: v if k == "n_batches" else float(v) for k, v in zip(BATCH_STATS, values, strict=True)
    }


def describe_batches(seconds: np.ndarray, batches: list[np.ndarray], batch_seconds: float) -> str:
    """One line on how full ``batches`` are (:func:`batch_stats`) against ``batch_seconds``."""
    st = batch_stats(seconds, batches)
    return (
        f"{st['n_batches']} batches, {st['mean_seconds']:.1f} s of audio each on average "
        f"({st['mean_seconds'] / batch_seconds:.1%} of batch_seconds {batch_seconds:g}; "
        f"min {st['min_seconds']:.1f} s), padding {st['padding_share']:.2%} of the padded audio "
        f"(at most {st['max_item_padding']:.2%} of one batch's longest)"
    )


#: The keys of :func:`batch_stats`.
BATCH_STATS = (
    "n_batches",
    "mean_seconds",
    "min_seconds",
    "mean_padded_seconds",
    "padding_share",
    "max_item_padding",
)


@dataclass(frozen=True)
class Item:
    """One utterance to encode."""

    utt_id: str
    path: str
    seconds: float


def probe(frame: pd.DataFrame, skips: SkipReport) -> list[Item]:
    """Utterances whose audio header reads, with their durations; the others are skipped."""
    items = []
    for utt_id, path in tqdm(
        zip(frame["utt_id"], frame["audio"], strict=True), total=len(frame), desc="audio headers"
    ):
        if not path:
            skips.add(utt_id, "<manifest>", "no audio: empty audio cell")
            continue
        try:
            items.append(Item(utt_id, path, audio_duration(path)))
        except InputError as e:
            skips.add_error(utt_id, e)
    return items


def _read_batch(items: list[Item], skips: SkipReport) -> tuple[list[str], list[np.ndarray]]:
    """Read the audio of one batch; bad files go to ``skips``."""
    ids, waves = [], []
    for it in items:
        try:
            waves.append(read_audio(it.path))
            ids.append(it.utt_id)
        except InputError as e:
            skips.add_error(it.utt_id, e)
    return ids, waves


class BatchAudio(torch.utils.data.Dataset):
    """The audio of batch ``index``: (batch size, ids, waves, errors), read where it is asked
    for (a DataLoader worker process); errors are (utt_id, path, reason, kind) tuples."""

    def __init__(self, items: list[Item], batches: list[np.ndarray]) -> None:
        """Store the items and the batches of their indices."""
        self.items, self.batches = items, batches

    def __len__(self) -> int:
        """Number of batches."""
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[int, list[str], list[np.ndarray], list[tuple]]:
        """Read, decode and resample the batch's audio."""
        ids, waves, errors = [], [], []
        for i in self.batches[index]:
            it = self.items[i]
            try:
                waves.append(read_audio(it.path))
                ids.append(it.utt_id)
            except InputError as e:
                errors.append((it.utt_id, e.path, e.reason, e.kind))
        return len(self.batches[index]), ids, waves, errors


def _as_is(batch: Any) -> Any:
    """The DataLoader's collate step: keep the batch as the dataset made it (numpy waves)."""
    return batch


def loader_workers(device: torch.device) -> int:
    """Audio-reading worker processes: 0 on CPU (a thread suffices), up to 8 with a GPU."""
    return 0 if device.type != "cuda" else max(1, min(8, (os.cpu_count() or 2) - 1))


def read_batches(
    items: list[Item], batches: list[np.ndarray], skips: SkipReport, workers: int = 0
) -> Iterator[tuple[int, list[str], list[np.ndarray]]]:
    """(batch size, ids, waves) per batch, in order, read ahead of the forward pass.

    With ``workers`` > 0 a torch DataLoader decodes and resamples in that many processes (two
    batches ahead each); otherwise :func:`prefetched` reads the next batch in a thread.
    """
    if workers == 0:
        yield from prefetched(items, batches, skips)
        return
    loader = torch.utils.data.DataLoader(
        BatchAudio(items, batches),
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_is,
        prefetch_factor=2,
    )
    for size, ids, waves, errors in loader:
        for utt_id, path, reason, kind in errors:
            skips.add(utt_id, path, reason, kind)
        yield size, ids, waves


def prefetched(
    items: list[Item], batches: list[np.ndarray], skips: SkipReport
) -> Iterator[tuple[int, list[str], list[np.ndarray]]]:
    """(batch size, ids, waves) per batch; the next batch is read in a thread meanwhile."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = deque(pool.submit(_read_batch, [items[i] for i in b], skips) for b in batches[:1])
        for b, batch in enumerate(batches):
            if b + 1 < len(batches):
                nxt = [items[i] for i in batches[b + 1]]
                pending.append(pool.submit(_read_batch, nxt, skips))
            yield (len(batch), *pending.popleft().result())


@dataclass
class Stats:
    """Counts of one extraction."""

    n_utts: int = 0
    samples: int = 0
    seconds: float = 0.0


def extract(
    items: list[Item],
    encoder: Encoder,
    writer: FrameWriter,
    skips: SkipReport,
    batch_seconds: float,
    utterance_norm: bool = False,
) -> Stats:
    """Encode every item in length-sorted batches and append the frames to ``writer``."""
    stats, t0 = Stats(), time.perf_counter()
    seconds = np.array([it.seconds for it in items])
    batches = encoder_batches(seconds, batch_seconds, encoder)
    log.info("features (%s): %s", encoder.name, describe_batches(seconds, batches, batch_seconds))
    with tqdm(total=len(items), desc=f"features ({encoder.name})", unit="utt") as bar:
        workers = loader_workers(getattr(encoder, "device", torch.device("cpu")))
        for size, ids, waves in read_batches(items, batches, skips, workers):
            encoded = encoder(waves) if waves else []
            for utt_id, wave, frames in zip(ids, waves, encoded, strict=True):
                if not np.isfinite(frames).all():
                    skips.add(utt_id, "<encoder>", f"non-finite {encoder.name} features")
                    continue
                writer.add(utt_id, utterance_normalise(frames) if utterance_norm else frames)
                stats.n_utts += 1
                stats.samples += len(wave)
            bar.update(size)
    stats.seconds = time.perf_counter() - t0
    return stats


#: Sizes of the tiny random test model (2 layers of width 32, 50 frames/s); the same keys fit
#: HubertConfig and WavLMConfig.
TINY_WAV2VEC2: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "conv_dim": (32, 32, 32, 32),
    "conv_stride": (5, 4, 4, 4),
    "conv_kernel": (10, 3, 3, 2),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}


def save_random_wav2vec2(folder: Path, size: str = "tiny", with_mask: bool = True) -> Path:
    """Save a randomly initialised Wav2Vec2 checkpoint at 50 frames/s (strides 5*4*4*4 = 320).

    Offline stand-in for a hub checkpoint in smoke tests and throughput benchmarks: ``tiny`` is
    2 layers of width 32; ``base`` has wav2vec2-base's sizes (``Wav2Vec2Config()`` defaults).
    ``with_mask`` gives a feature extractor with an attention mask and a layer-normalised CNN;
    without it the CNN is group-normalised and the extractor has no mask (like wav2vec2-base).
    """
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    norm = {"feat_extract_norm": "layer" if with_mask else "group"}
    config = Wav2Vec2Config(
        **(TINY_WAV2VEC2 if size == "tiny" else {}), **norm, do_stable_layer_norm=with_mask
    )
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=with_mask).save_pretrained(folder)
    return folder
