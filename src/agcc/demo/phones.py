"""Per-phone articulatory targets, durations and source settings of the simulated talker.

Articulatory state: six dimensions, the first four visible on the face.

=====  ========  ===========================================================
index  name      meaning (0..1 unless noted)
=====  ========  ===========================================================
0      jaw       jaw opening (0 closed, 1 wide open)
1      spread    lip spreading (negative = slightly pursed)
2      round     lip rounding / protrusion
3      close     lip closure (1 = lips pressed together, 0.6 = lip to teeth)
4      front     tongue frontness (hidden: moves F2 only)
5      rhotic    tongue bunching for /r/ (hidden: lowers F3)
=====  ========  ===========================================================

A NaN target means "unspecified": the dimension is interpolated from the neighbouring phones,
which is how consonants take the lip shape of the vowels around them (coarticulation).
Diphthongs have two targets, each held for half of the phone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agcc.demo.lexicon import base_phone, stress

ARTIC_DIMS = ("jaw", "spread", "round", "close", "front", "rhotic")
N_DIMS = len(ARTIC_DIMS)
# Mouth at rest between utterances: nearly closed, lips lightly together.
REST = np.array([0.08, 0.1, 0.05, 0.8, 0.5, 0.0])
NOISE_TYPES = ("h", "s", "sh", "f")
_NAN = float("nan")


@dataclass(frozen=True)
class PhoneSpec:
    """Targets (one or two 6-vectors), base duration, time constant and source of one phone."""

    dur_ms: float
    targets: tuple[tuple[float, ...], ...]
    tau_ms: float
    voicing: float
    noise: str = ""
    noise_amp: float = 0.0
    stop: bool = False
    affricate: bool = False
    nasal: bool = False

    @property
    def is_vowel(self) -> bool:
        """True for vowels (their targets fix every dimension)."""
        return not any(np.isnan(v) for t in self.targets for v in t)


def _v(jaw: float, spread: float, rnd: float, front: float, rhotic: float = 0.0) -> tuple:
    """A vowel target: every dimension specified, lips open."""
    return (jaw, spread, rnd, 0.0, front, rhotic)


def _c(
    jaw: float = _NAN,
    spread: float = _NAN,
    rnd: float = _NAN,
    close: float = 0.0,
    front: float = _NAN,
    rhotic: float = 0.0,
) -> tuple:
    """A consonant target: unspecified dimensions are NaN."""
    return (jaw, spread, rnd, close, front, rhotic)


def _vowel(dur: float, *targets: tuple, tau: float = 28.0) -> PhoneSpec:
    """A fully voiced vowel."""
    return PhoneSpec(dur, tuple(targets), tau if len(targets) == 1 else 22.0, 1.0)


VOWELS: dict[str, PhoneSpec] = {
    "AA": _vowel(130, _v(0.85, 0.15, 0.0, 0.15)),
    "AE": _vowel(140, _v(0.75, 0.55, 0.0, 0.70)),
    "AH": _vowel(100, _v(0.60, 0.25, 0.0, 0.40)),
    "AO": _vowel(130, _v(0.70, 0.00, 0.55, 0.15)),
    "AW": _vowel(170, _v(0.80, 0.20, 0.10, 0.30), _v(0.35, 0.00, 0.70, 0.30)),
    "AY": _vowel(170, _v(0.80, 0.15, 0.00, 0.20), _v(0.30, 0.70, 0.00, 0.90)),
    "EH": _vowel(110, _v(0.55, 0.50, 0.0, 0.75)),
    "ER": _vowel(120, _v(0.35, 0.15, 0.35, 0.45, 1.0)),
    "EY": _vowel(150, _v(0.50, 0.55, 0.00, 0.80), _v(0.25, 0.80, 0.00, 0.95)),
    "IH": _vowel(80, _v(0.30, 0.60, 0.0, 0.85)),
    "IY": _vowel(120, _v(0.18, 0.90, 0.0, 1.00)),
    "OW": _vowel(150, _v(0.55, 0.00, 0.60, 0.20), _v(0.30, 0.00, 0.85, 0.25)),
    "OY": _vowel(170, _v(0.65, 0.00, 0.60, 0.15), _v(0.30, 0.60, 0.00, 0.90)),
    "UH": _vowel(90, _v(0.30, 0.05, 0.55, 0.35)),
    "UW": _vowel(130, _v(0.22, 0.00, 0.90, 0.40)),
}
SCHWA = _vowel(55, _v(0.40, 0.20, 0.0, 0.45), tau=24.0)

CONSONANTS: dict[str, PhoneSpec] = {
    "P": PhoneSpec(80, (_c(0.15, close=1.0),), 10, 0.0, "f", 0.30, stop=True),
    "B": PhoneSpec(70, (_c(0.15, close=1.0),), 10, 0.25, "f", 0.25, stop=True),
    "M": PhoneSpec(70, (_c(0.15, close=1.0),), 12, 0.5, nasal=True),
    "F": PhoneSpec(90, (_c(0.15, close=0.6),), 14, 0.0, "f", 0.12),
    "V": PhoneSpec(60, (_c(0.15, close=0.6),), 14, 0.45, "f", 0.07),
    "TH": PhoneSpec(80, (_c(0.20, front=0.8),), 16, 0.0, "f", 0.10),
    "DH": PhoneSpec(40, (_c(0.20, front=0.8),), 16, 0.5, "f", 0.05),
    "T": PhoneSpec(70, (_c(0.18, front=0.9),), 12, 0.0, "s", 0.35, stop=True),
    "D": PhoneSpec(60, (_c(0.18, front=0.9),), 12, 0.25, "s", 0.30, stop=True),
    "N": PhoneSpec(60, (_c(0.18, front=0.9),), 14, 0.55, nasal=True),
    "L": PhoneSpec(60, (_c(0.25, front=0.8),), 18, 0.8),
    "S": PhoneSpec(100, (_c(0.12, front=0.9),), 14, 0.0, "s", 0.35),
    "Z": PhoneSpec(80, (_c(0.12, front=0.9),), 14, 0.45, "s", 0.20),
    "SH": PhoneSpec(100, (_c(0.18, 0.0, 0.55, front=0.8),), 16, 0.0, "sh", 0.35),
    "ZH": PhoneSpec(80, (_c(0.18, 0.0, 0.55, front=0.8),), 16, 0.45, "sh", 0.20),
    "CH": PhoneSpec(100, (_c(0.18, 0.0, 0.5, front=0.85),), 12, 0.0, "sh", 0.30, affricate=True),
    "JH": PhoneSpec(90, (_c(0.18, 0.0, 0.5, front=0.85),), 12, 0.25, "sh", 0.20, affricate=True),
    "K": PhoneSpec(80, (_c(0.25, front=0.2),), 14, 0.0, "sh", 0.30, stop=True),
    "G": PhoneSpec(70, (_c(0.25, front=0.2),), 14, 0.25, "sh", 0.25, stop=True),
    "NG": PhoneSpec(70, (_c(0.25, front=0.2),), 14, 0.55, nasal=True),
    "HH": PhoneSpec(60, (_c(),), 20, 0.0, "h", 0.35),
    "R": PhoneSpec(60, (_c(0.30, 0.10, 0.45, front=0.4, rhotic=1.0),), 20, 0.8),
    "W": PhoneSpec(60, (_c(0.20, 0.00, 0.95, front=0.2),), 22, 0.8),
    "Y": PhoneSpec(55, (_c(0.20, 0.75, 0.00, front=1.0),), 22, 0.8),
}

_STRESS_DUR = {0: 0.6, 1: 1.0, 2: 0.85}


def spec(phone: str) -> PhoneSpec:
    """The PhoneSpec of an ARPAbet phone with or without stress digit; KeyError when unknown."""
    base, st = base_phone(phone), stress(phone)
    if base == "AH" and st == 0:
        return SCHWA
    if base in VOWELS:
        return VOWELS[base]
    if base in CONSONANTS:
        return CONSONANTS[base]
    raise KeyError(f"phone {phone!r} has no articulatory specification")


def base_duration(phone: str) -> float:
    """Base duration in seconds (unstressed vowels are shorter)."""
    st = stress(phone)
    factor = 1.0 if st is None or base_phone(phone) == "AH" and st == 0 else _STRESS_DUR[st]
    return spec(phone).dur_ms / 1000.0 * factor
