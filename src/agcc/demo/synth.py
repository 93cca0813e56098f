"""Source-filter speech synthesis driven by the articulatory trajectories, and the channel.

Formants follow the mouth (units Hz, before the talker's vocal-tract scale ``vtl``):

    F1 = (250 + 620 jaw) (1 - 0.10 round) (1 - 0.25 close) (1 - 0.15 nasal)
    F2 = (900 + 800 front + 400 spread) (1 - 0.25 round)
    F3 = (2500 + 300 front + 100 spread) (1 - 0.08 round) (1 - 0.22 rhotic)
    F4 = 3500 (1 - 0.05 round)

so jaw opening raises F1, lip spreading raises F2 and rounding lowers all formants. The voiced
source is a pulse train on the f0 contour (with jitter and shimmer) through a two-pole glottal
low-pass and lip radiation; aspiration noise joins it before the vocal tract, a cascade of four
resonators whose coefficients change every 5 ms block (multiplied out into one all-pole filter,
``lfilter`` per block, its state carried across blocks); frication noise is added after it
through fixed place-of-articulation filters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

from agcc.demo.articulation import STEP
from agcc.demo.phones import NOISE_TYPES


@dataclass(frozen=True)
class Channel:
    """Recording chain of one corpus: filters, room and noise floor."""

    sr: int
    highpass_hz: float
    tilt: float  # > 0: pre-emphasis (brighter); < 0: one-pole low-pass (darker)
    lowpass_hz: float | None
    rt60: float
    wet: float  # energy of the reverberant tail relative to the direct sound
    noise_dbfs: float
    hum_dbfs: float | None = None


@dataclass(frozen=True)
class Voice:
    """Voice settings of one utterance (talker x emotion)."""

    vtl: float  # formant scale (> 1: shorter vocal tract, higher formants)
    glottal_hz: float  # corner of the glottal low-pass: higher = flatter, pressed voice
    jitter: float
    breath: float


def formant_tracks(artic: np.ndarray, nasal: np.ndarray, vtl: float) -> tuple:
    """Formant frequencies and bandwidths (T, 4) in Hz from articulation (T, 6) and nasality (T,).

    See the module docstring for the formulas; each formant is kept at least 250-400 Hz above
    the one below it, and bandwidths widen with nasality (B1) and the vocal-tract scale.
    """
    jaw, spread, rnd, close, front, rhotic = artic.T
    f1 = (250 + 620 * jaw) * (1 - 0.10 * rnd) * (1 - 0.25 * close) * (1 - 0.15 * nasal)
    f2 = (900 + 800 * front + 400 * spread) * (1 - 0.25 * rnd)
    f3 = (2500 + 300 * front + 100 * spread) * (1 - 0.08 * rnd) * (1 - 0.22 * rhotic)
    f4 = 3500 * (1 - 0.05 * rnd)
    f2 = np.maximum(f2, f1 + 250)
    f3 = np.maximum(f3, f2 + 350)
    f4 = np.maximum(f4, f3 + 400)
    freqs = np.stack([f1, f2, f3, f4], axis=1) * vtl  # (T, 4)
    bw = np.broadcast_to(np.array([80.0, 100.0, 150.0, 220.0]), freqs.shape).copy()
    bw[:, 0] *= 1 + 1.5 * nasal
    return freqs, bw * vtl


def resonator_sos(freqs: np.ndarray, bw: np.ndarray, sr: int) -> np.ndarray:
    """Second-order sections (T, 4, 6) of unity-DC-gain resonators.

    H(z) = (1 - c + r^2) / (1 - c z^-1 + r^2 z^-2), r = exp(-pi B / sr), c = 2 r cos(2 pi F / sr).
    """
    r = np.exp(-np.pi * bw / sr)
    c = 2 * r * np.cos(2 * np.pi * np.minimum(freqs, 0.45 * sr) / sr)
    sos = np.zeros((*freqs.shape, 6))
    sos[..., 0] = 1 - c + r * r
    sos[..., 3] = 1.0
    sos[..., 4] = -c
    sos[..., 5] = r * r
    return sos


def cascade_polynomial(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gain (T,) and denominator (T, 2K + 1) of a cascade of K all-pole sections (T, K, 6).

    The product of the sections' denominators, computed for all blocks at once; the gain is
    the product of their numerators b0.
    """
    gain = np.prod(sos[..., 0], axis=1)
    den = sos[:, 0, 3:]
    for k in range(1, sos.shape[1]):
        q = sos[:, k, 3:]
        out = np.zeros((len(den), den.shape[1] + 2))
        for j in range(3):
            out[:, j : j + den.shape[1]] += den * q[:, j : j + 1]
        den = out
    return gain, den


def block_bounds(n_blocks: int, n_samples: int, sr: int) -> np.ndarray:
    """Sample index where each control block starts, plus the end (n_blocks + 1,)."""
    bounds = np.round(np.arange(n_blocks + 1) * STEP * sr).astype(int)
    bounds[-1] = n_samples
    return np.minimum(bounds, n_samples)


def vocal_tract(x: np.ndarray, sos: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Time-varying all-pole filter of ``x`` (N,) with sections ``sos`` (T, K, 6), one per block.

    Within block k: y[n] = g_k x[n] - sum_j a_kj y[n - j] (the cascade multiplied out). At each
    block start the filter state is rebuilt from the last 2K outputs for the new coefficients,
    z_i = -sum_m a_(i+1+m) y[n-m], so the recursion runs on without a seam.
    """
    gain, den = cascade_polynomial(sos)
    order = den.shape[1] - 1
    y = np.zeros(len(x) + order)  # ``order`` leading zeros: the history before the start
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        if hi <= lo:
            continue
        past = y[lo : lo + order][::-1]  # y[n-1], y[n-2], ... of the block's first sample n
        zi = -np.correlate(den[k, 1:], past, "full")[order - 1 :]
        y[lo + order : hi + order], _ = lfilter([gain[k]], den[k], x[lo:hi], zi=zi)
    return y[order:]


def pulse_train(
    f0: np.ndarray, voicing: np.ndarray, sr: int, jitter: float, rng: np.random.Generator
) -> np.ndarray:
    """Glottal pulses (N,) at the integer crossings of the phase sum(f0)/sr, with jitter/shimmer.

    Each pulse sits at a fractional sample position, shared linearly between its two neighbours;
    its amplitude is the voicing there times (1 + N(0, 0.04)).
    """
    n = len(f0)
    phase = np.cumsum(f0) / sr
    cycle = np.floor(phase)
    at = np.flatnonzero(np.diff(cycle) > 0) + 1  # phase passes an integer in (at - 1, at]
    at = at[voicing[at] > 0.02]
    frac = (cycle[at] - phase[at - 1]) / (phase[at] - phase[at - 1])
    pos = at - 1 + frac + rng.normal(0.0, 1.0, len(at)) * jitter * sr / f0[at]
    pos = np.clip(pos, 0, n - 2)
    amp = voicing[at] * (1 + rng.normal(0.0, 0.04, len(at)))
    i0 = np.floor(pos).astype(int)
    w = pos - i0
    out = np.bincount(i0, amp * (1 - w), minlength=n + 1)
    out += np.bincount(i0 + 1, amp * w, minlength=n + 1)
    return out[:n]


def _unit_rms(x: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Scale ``x`` so its RMS over the mask ``where`` is 1 (unchanged when the mask is empty)."""
    rms = np.sqrt(np.mean(x[where] ** 2)) if where.any() else 0.0
    return x / rms if rms > 0 else x


@lru_cache(maxsize=4)
def _frication_filters(sr: int) -> list[np.ndarray]:
    """Fixed noise-shaping filters for the s, sh and f noise types (sos arrays)."""
    nyq = 0.5 * sr
    return [
        butter(4, min(4000.0, 0.8 * nyq), "highpass", fs=sr, output="sos"),
        butter(2, [2000.0, min(5000.0, 0.9 * nyq)], "bandpass", fs=sr, output="sos"),
        butter(2, [1000.0, min(7000.0, 0.9 * nyq)], "bandpass", fs=sr, output="sos"),
    ]


def synthesize(
    t: np.ndarray,
    ctrl: dict[str, np.ndarray],
    voice: Voice,
    n_samples: int,
    sr: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Speech (N,) from control tracks on grid ``t``: artic (T, 6), f0, voicing, nasal, noise,
    gain_db. Output level is arbitrary; the caller normalises it."""
    ts = np.arange(n_samples) / sr

    def up(x: np.ndarray) -> np.ndarray:
        """Control track -> sample rate (linear interpolation)."""
        return np.interp(ts, t, x)

    voicing = up(ctrl["voicing"])
    noise = np.stack([up(c) for c in ctrl["noise"].T], axis=1)  # (N, 4)
    pulses = pulse_train(up(ctrl["f0"]), voicing, sr, voice.jitter, rng)
    rg = np.exp(-2 * np.pi * voice.glottal_hz / sr)
    glottal = np.diff(lfilter([1.0], [1.0, -2 * rg, rg * rg], pulses), prepend=0.0)
    voiced = voicing > 0.5
    source = _unit_rms(glottal, voiced)
    asp = noise[:, NOISE_TYPES.index("h")] + voice.breath * voicing
    source = source + rng.normal(0.0, 1.0, n_samples) * asp
    freqs, bw = formant_tracks(ctrl["artic"], ctrl["nasal"], voice.vtl)
    out = vocal_tract(source, resonator_sos(freqs, bw, sr), block_bounds(len(t), n_samples, sr))
    out = _unit_rms(out, voiced)
    for k, sos in enumerate(_frication_filters(sr), start=1):
        amp = noise[:, k]
        if amp.any():
            out += sosfilt(sos, rng.normal(0.0, 1.0, n_samples)) * amp
    return out * 10 ** (up(ctrl["gain_db"]) / 20)


def normalise(x: np.ndarray, where: np.ndarray, level_dbfs: float) -> np.ndarray:
    """Scale ``x`` so its RMS over the mask ``where`` is ``level_dbfs`` dB re full scale."""
    return _unit_rms(x, where) * 10 ** (level_dbfs / 20)


def room_response(channel: Channel, rng: np.random.Generator) -> np.ndarray:
    """Impulse response: a unit direct path, then exponentially decaying noise from 3 ms.

    tail(t) ~ N(0, 1) exp(-6.91 t / RT60), scaled so its energy is ``wet`` times the direct one.
    """
    n = int(min(channel.rt60, 0.5) * channel.sr)
    tt = np.arange(n) / channel.sr
    tail = rng.normal(0.0, 1.0, n) * np.exp(-6.91 * tt / channel.rt60) * (tt >= 0.003)
    tail *= np.sqrt(channel.wet / np.sum(tail**2))
    tail[0] = 1.0
    return tail


@lru_cache(maxsize=4)
def _mic_filters(channel: Channel) -> tuple[np.ndarray, np.ndarray | None]:
    """High-pass and optional low-pass sections of a channel."""
    sr = channel.sr
    highpass = butter(2, channel.highpass_hz, "highpass", fs=sr, output="sos")
    if channel.lowpass_hz is None:
        return highpass, None
    return highpass, butter(4, channel.lowpass_hz, "lowpass", fs=sr, output="sos")


def apply_channel(
    x: np.ndarray, channel: Channel, room: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Microphone filters, room reverberation and an additive noise floor (pink-ish, + hum)."""
    sr = channel.sr
    highpass, lowpass = _mic_filters(channel)
    y = sosfilt(highpass, x)
    if channel.tilt > 0:
        y = lfilter([1.0, -channel.tilt], [1.0], y)
    elif channel.tilt < 0:
        y = lfilter([1.0 + channel.tilt], [1.0, channel.tilt], y)
    if lowpass is not None:
        y = sosfilt(lowpass, y)
    y = fftconvolve(y, room)[: len(x)]
    floor = lfilter([1.0], [1.0, -0.95], rng.normal(0.0, 1.0, len(x)))
    y += _unit_rms(floor, np.ones(len(x), bool)) * 10 ** (channel.noise_dbfs / 20)
    if channel.hum_dbfs is not None:
        ts = np.arange(len(x)) / sr
        hum = np.sin(2 * np.pi * 60 * ts) + 0.5 * np.sin(2 * np.pi * 180 * ts)
        y += hum * 10 ** (channel.hum_dbfs / 20)
    return y


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float signal in [-1, 1] -> int16 samples (clipped)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
