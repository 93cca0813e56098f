"""Phone timing and continuous articulatory trajectories at the control rate (200 Hz).

A sentence's phones get durations (base duration x speaking rate x log-normal noise, with
phrase-final lengthening); each phone contributes step targets (NaN dimensions filled from its
neighbours), which a critically damped second-order system turns into smooth trajectories:

    y[n] = 2a y[n-1] - a^2 y[n-2] + (1 - a)^2 x[n],   a = exp(-dt / tau)

with the phone's time constant tau divided by the talker's and the emotion's tension. Targets
switch slightly before the phone starts (anticipatory coarticulation); fast phones undershoot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from agcc.demo.phones import N_DIMS, NOISE_TYPES, REST, base_duration, spec
from agcc.demo.styles import Style

CONTROL_RATE = 200.0
STEP = 1.0 / CONTROL_RATE
ANTICIPATION = 0.02  # seconds targets lead the phone boundaries
REST_TAU = 0.06
MIN_PHONE = 0.03


@dataclass(frozen=True)
class Token:
    """One phone of the utterance: ARPAbet label with stress digit, word index, true times."""

    phone: str
    word: int
    start: float
    end: float


@dataclass(frozen=True)
class Timeline:
    """True phone and word times of one utterance, silences included in ``duration``."""

    tokens: tuple[Token, ...]
    words: tuple[tuple[str, float, float], ...]
    duration: float

    @property
    def speech_start(self) -> float:
        """Start of the first phone (s)."""
        return self.tokens[0].start

    @property
    def speech_end(self) -> float:
        """End of the last phone (s)."""
        return self.tokens[-1].end


@dataclass(frozen=True)
class Habits:
    """A talker's personal articulation habits (multipliers 1 / offsets 0 = average)."""

    jaw_gain: float = 1.0
    spread_offset: float = 0.0
    round_gain: float = 1.0
    tension: float = 1.0
    duration: float = 1.0


def plan_timeline(
    words: list[tuple[str, tuple[str, ...]]],
    duration_factor: float,
    silences: tuple[float, float],
    pause_prob: float,
    rng: np.random.Generator,
    total_range: tuple[float, float] = (1.5, 4.0),
) -> Timeline:
    """Phone durations and times for one sentence, the total kept within ``total_range`` (s)."""
    lead, trail = silences
    durs, gaps = _phone_durations(words, duration_factor, pause_prob, rng)
    speech = durs.sum() + sum(gaps)
    room = total_range[1] - 0.05 - lead - trail
    if speech > room:  # squeeze a long, slow sentence into the allowed length
        squeeze = room / speech
        durs, gaps = np.maximum(durs * squeeze, MIN_PHONE), [g * squeeze for g in gaps]
        speech = durs.sum() + sum(gaps)
    deficit = total_range[0] + 0.05 - (lead + speech + trail)
    if deficit > 0:  # pad short sentences with silence on both sides
        share = rng.uniform(0.3, 0.7)
        lead, trail = lead + share * deficit, trail + (1 - share) * deficit
    return _place(words, durs, gaps, lead, lead + speech + trail)


def _phone_durations(
    words: list[tuple[str, tuple[str, ...]]],
    duration_factor: float,
    pause_prob: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[float]]:
    """Durations of all phones (flat) and the pause after each word (last one 0)."""
    durs = []
    for w, (_, phones) in enumerate(words):
        final = 1.25 if w == len(words) - 1 else 1.0
        durs += [base_duration(p) * duration_factor * final for p in phones]
    noise = rng.lognormal(0.0, 0.15, size=len(durs))
    gaps = [
        float(rng.uniform(0.08, 0.2)) if rng.random() < pause_prob else 0.0
        for _ in range(len(words) - 1)
    ] + [0.0]
    return np.maximum(np.asarray(durs) * noise, MIN_PHONE), gaps


def _place(
    words: list[tuple[str, tuple[str, ...]]],
    durs: np.ndarray,
    gaps: list[float],
    lead: float,
    duration: float,
) -> Timeline:
    """Lay phones end to end from ``lead``, inserting the word pauses."""
    tokens, spans, t, k = [], [], lead, 0
    for w, (word, phones) in enumerate(words):
        w_start = t
        for p in phones:
            tokens.append(Token(p, w, t, t + float(durs[k])))
            t, k = t + float(durs[k]), k + 1
        spans.append((word, w_start, t))
        t += gaps[w]
    return Timeline(tuple(tokens), tuple(spans), duration)


def control_times(duration: float) -> np.ndarray:
    """Control-grid times 0, 5 ms, ... covering ``duration`` (s)."""
    return np.arange(int(np.ceil(duration * CONTROL_RATE)) + 1) * STEP


def _target_table(tl: Timeline) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sub-phone segments: starts (S,), targets (S, 6) with NaNs filled, taus (S,), vowel (S,)."""
    starts, targets, taus, vowel = [], [], [], []
    for tok in tl.tokens:
        sp = spec(tok.phone)
        n = len(sp.targets)
        for j, target in enumerate(sp.targets):
            starts.append(tok.start + j * (tok.end - tok.start) / n)
            targets.append(target)
            taus.append(sp.tau_ms / 1000.0)
            vowel.append(sp.is_vowel)
    tgt = np.array(targets, dtype=float)  # (S, 6)
    pos = np.arange(len(tgt))
    for d in range(N_DIMS):
        known = ~np.isnan(tgt[:, d])
        tgt[~known, d] = np.interp(pos[~known], pos[known], tgt[known, d])
    return np.array(starts), tgt, np.array(taus), np.array(vowel)


def _apply_style(
    tgt: np.ndarray, vowel: np.ndarray, style: Style, habits: Habits, rng: np.random.Generator
) -> np.ndarray:
    """Emotion and talker gains/offsets on the visible dimensions, plus token-level noise."""
    out = tgt.copy()
    noise = rng.normal(0.0, 0.04, size=(len(tgt), 3)) * vowel[:, None]
    jaw_gain = style.jaw_gain * habits.jaw_gain
    out[:, 0] = np.clip(tgt[:, 0] * jaw_gain + style.jaw_offset + noise[:, 0], 0.02, 1.1)
    spread = tgt[:, 1] + style.spread_offset + habits.spread_offset + noise[:, 1]
    out[:, 1] = np.clip(spread, -0.3, 1.3)
    rnd = tgt[:, 2] * style.round_gain * habits.round_gain + noise[:, 2]
    out[:, 2] = np.clip(rnd, 0.0, 1.1)
    return out


def trajectories(
    t: np.ndarray, tl: Timeline, style: Style, habits: Habits, rng: np.random.Generator
) -> np.ndarray:
    """Articulatory trajectories (T, 6) on the control grid ``t`` for one utterance.

    Segments: rest, the phones' (sub-)targets, rest. Each segment drives the critically damped
    filter y[n] = 2a y[n-1] - a^2 y[n-2] + (1-a)^2 x[n] with a = exp(-dt/tau), tau = phone tau /
    (style tension x talker tension); the filter state carries across segments.
    """
    starts, tgt, taus, vowel = _target_table(tl)
    tgt = _apply_style(tgt, vowel, style, habits, rng)
    starts = np.concatenate([[0.0], starts - ANTICIPATION, [tl.speech_end - ANTICIPATION]])
    tgt = np.vstack([REST, tgt, REST])
    taus = np.concatenate([[REST_TAU], taus / (style.tension * habits.tension), [REST_TAU]])
    bounds = np.searchsorted(t, starts, side="left")
    bounds[0] = 0
    bounds = np.append(bounds, len(t))
    out = np.empty((len(t), N_DIMS))
    y1 = y2 = REST
    for k in range(len(tgt)):
        lo, hi = bounds[k], bounds[k + 1]
        if hi <= lo:  # a segment shorter than one control step
            continue
        a = np.exp(-STEP / taus[k])
        a1, a2 = -2.0 * a, a * a
        zi = np.stack([-a1 * y1 - a2 * y2, -a2 * y1])  # (2, 6) transposed direct-form state
        x = np.broadcast_to(tgt[k], (hi - lo, N_DIMS))
        out[lo:hi], _ = lfilter([(1.0 - a) ** 2], [1.0, a1, a2], x, axis=0, zi=zi)
        y1, y2 = out[hi - 1], (out[hi - 2] if hi - lo > 1 else y1)
    return out


def source_controls(t: np.ndarray, tl: Timeline) -> dict[str, np.ndarray]:
    """Voicing (T,), noise amplitudes (T, 4: h s sh f), nasality (T,), stress (T,) on ``t``."""
    voicing, nasal, stressed = np.zeros(len(t)), np.zeros(len(t)), np.zeros(len(t))
    noise = np.zeros((len(t), len(NOISE_TYPES)))
    for tok in tl.tokens:
        sp = spec(tok.phone)
        lo, hi = np.searchsorted(t, [tok.start, tok.end])
        voicing[lo:hi] = sp.voicing
        nasal[lo:hi] = float(sp.nasal)
        stressed[lo:hi] = float(tok.phone.endswith("1"))
        if sp.noise:
            dur = tok.end - tok.start
            if sp.stop:
                release = tok.end - min(0.02, 0.35 * dur)
            elif sp.affricate:
                release = tok.end - 0.5 * dur
            else:
                release = tok.start
            r = np.searchsorted(t, release)
            noise[r:hi, NOISE_TYPES.index(sp.noise)] = sp.noise_amp
    kernel = np.array([0.25, 0.5, 0.25])
    smooth = [np.convolve(x, kernel, mode="same") for x in (voicing, nasal, stressed)]
    noise = np.stack([np.convolve(c, kernel, mode="same") for c in noise.T], axis=1)
    return {"voicing": smooth[0], "nasal": smooth[1], "stressed": smooth[2], "noise": noise}
