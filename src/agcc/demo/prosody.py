"""Intonation (f0) and loudness contours on the control grid.

f0(t) = f0_talker * f0_mult * 2^(s(t) / 12), with s(t) in semitones the sum of a declination
line, Gaussian pitch accents on stressed vowels, a final fall (or rise for questions) and a slow
random wander; the emotion's ``f0_range`` scales every term but the wander.
"""

from __future__ import annotations

import numpy as np

from agcc.demo.articulation import Timeline
from agcc.demo.lexicon import stress


def smooth_noise(
    t: np.ndarray, rng: np.random.Generator, n: int = 3, band: tuple[float, float] = (0.15, 0.9)
) -> np.ndarray:
    """Slow random wander with unit variance: a sum of ``n`` random sinusoids in ``band`` Hz."""
    freq = rng.uniform(*band, size=n)
    phase = rng.uniform(0.0, 2 * np.pi, size=n)
    amp = rng.uniform(0.5, 1.0, size=n)
    amp *= np.sqrt(2.0 / np.sum(amp**2))
    return np.sin(2 * np.pi * freq[None, :] * t[:, None] + phase[None, :]) @ amp  # (T,)


def semitone_contour(
    t: np.ndarray, tl: Timeline, f0_range: float, question: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Intonation s(t) in semitones (T,) and its accent part (T,) for brow movements."""
    s0, s1 = tl.speech_start, tl.speech_end
    frac = np.clip((t - s0) / (s1 - s0), 0.0, 1.0)
    declination = 1.0 - 2.5 * frac
    accent = np.zeros(len(t))
    vowels = [tok for tok in tl.tokens if stress(tok.phone) == 1]
    for i, tok in enumerate(vowels):
        if i == 0 or rng.random() < 0.6:
            centre = 0.5 * (tok.start + tok.end)
            height = rng.uniform(1.5, 3.5)
            accent += height * np.exp(-0.5 * ((t - centre) / 0.06) ** 2)
    final_zone = np.clip((t - (s1 - 0.25)) / 0.25, 0.0, 1.0)
    final = (4.0 if question else -2.0) * final_zone
    wander = 0.4 * smooth_noise(t, rng, band=(0.5, 2.0))
    return f0_range * (declination + accent + final) + wander, f0_range * accent


def f0_contour(
    t: np.ndarray,
    tl: Timeline,
    f0_level: float,
    f0_range: float,
    question: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """f0 in Hz (T,), clipped to 60..500, and the accent contour (T,) in semitones."""
    st, accent = semitone_contour(t, tl, f0_range, question, rng)
    return np.clip(f0_level * 2.0 ** (st / 12.0), 60.0, 500.0), accent


def gain_contour(t: np.ndarray, tl: Timeline, stressed: np.ndarray) -> np.ndarray:
    """Loudness in dB (T,): +2 dB on stressed vowels, 3 dB declination over the sentence."""
    frac = np.clip((t - tl.speech_start) / (tl.speech_end - tl.speech_start), 0.0, 1.0)
    return 2.0 * stressed - 3.0 * frac
