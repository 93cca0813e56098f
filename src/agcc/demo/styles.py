"""How emotion and the talker change articulation, prosody and voice quality.

An emotion is a ``Style``: gains and offsets on the articulatory targets (anger opens the jaw
more and moves faster, happiness spreads the lips, sadness opens less and moves slower) and on
prosody (f0 level and range, loudness, speaking rate, voice quality). ``intensity`` scales the
deviation from neutral, so a low-intensity anger lies between neutral and full anger.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

EMOTION_NAMES = ("neutral", "anger", "happiness", "sadness", "disgust", "fear")


@dataclass(frozen=True)
class Style:
    """Multipliers (1 = neutral) and offsets (0 = neutral) applied to one utterance."""

    jaw_gain: float = 1.0
    jaw_offset: float = 0.0
    spread_offset: float = 0.0
    round_gain: float = 1.0
    tension: float = 1.0  # > 1: faster articulators (shorter time constants)
    duration: float = 1.0  # > 1: slower speech (longer phones)
    f0_mult: float = 1.0
    f0_range: float = 1.0
    level_db: float = 0.0
    glottal_r: float = 0.0  # > 0: steeper spectral tilt of the voice source (lax, breathy)
    jitter: float = 0.01  # cycle-to-cycle period perturbation (fraction of the period)
    breath: float = 0.02  # aspiration noise mixed into voicing
    corner: float = 0.0  # mouth-corner raise (face units, + = up)
    brow: float = 0.0  # brow raise (face units, + = up)
    motion: float = 1.0  # head-motion gain


NEUTRAL = Style()

EMOTION_STYLES: dict[str, Style] = {
    "neutral": NEUTRAL,
    "anger": Style(
        jaw_gain=1.25,
        jaw_offset=0.03,
        spread_offset=0.05,
        tension=1.4,
        duration=0.92,
        f0_mult=1.3,
        f0_range=1.45,
        level_db=6.0,
        glottal_r=-0.02,
        jitter=0.015,
        breath=0.01,
        corner=-0.01,
        brow=-0.04,
        motion=1.4,
    ),
    "happiness": Style(
        jaw_gain=1.1,
        spread_offset=0.3,
        round_gain=0.8,
        tension=1.15,
        duration=0.95,
        f0_mult=1.22,
        f0_range=1.5,
        level_db=3.0,
        glottal_r=-0.01,
        corner=0.05,
        brow=0.01,
        motion=1.3,
    ),
    "sadness": Style(
        jaw_gain=0.78,
        jaw_offset=-0.02,
        spread_offset=-0.08,
        tension=0.72,
        duration=1.2,
        f0_mult=0.92,
        f0_range=0.6,
        level_db=-5.0,
        glottal_r=0.012,
        jitter=0.013,
        breath=0.05,
        corner=-0.03,
        brow=0.03,
        motion=0.6,
    ),
    "disgust": Style(
        jaw_gain=0.9,
        spread_offset=0.08,
        tension=0.95,
        duration=1.1,
        f0_mult=0.95,
        f0_range=0.9,
        level_db=-1.0,
        corner=-0.03,
        brow=-0.02,
    ),
    "fear": Style(
        jaw_gain=1.05,
        spread_offset=0.12,
        tension=1.2,
        duration=0.9,
        f0_mult=1.35,
        f0_range=1.2,
        level_db=1.0,
        jitter=0.02,
        breath=0.04,
        brow=0.04,
        motion=1.2,
    ),
}


def emotion_style(emotion: str, intensity: float) -> Style:
    """The style of ``emotion`` with its deviation from neutral scaled by ``intensity``.

    Each field v becomes v_neutral + intensity * (v_emotion - v_neutral); intensity 0 is
    neutral, 1 the nominal emotion, above 1 an exaggerated one.
    """
    if emotion not in EMOTION_STYLES:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTION_NAMES}")
    full = EMOTION_STYLES[emotion]
    values = {
        f.name: getattr(NEUTRAL, f.name)
        + intensity * (getattr(full, f.name) - getattr(NEUTRAL, f.name))
        for f in fields(Style)
    }
    return replace(NEUTRAL, **values)
