"""espeak-ng speech with its own phoneme timings: a known ground truth for the aligner.

Calls libespeak-ng's C API through ctypes (no Python binding needed): ``espeak_Initialize`` in
synchronous mode with phoneme events in IPA, a synthesis callback that collects the samples and
the events, ``espeak_Synth``. Every ``espeakEVENT_PHONEME`` event carries the phoneme's start as
a sample index of the output; ``espeakEVENT_WORD`` events mark word starts. The audio is
resampled from espeak's 22,050 Hz to the requested rate (soxr), and times are in seconds.

libespeak-ng (Debian: ``libespeak-ng1``, with ``espeak-ng``) is a test and benchmark
dependency: the Makefile installs it when it can; ``available()`` says whether it loads.
``IPA_TO_ARPABET`` maps espeak's English IPA phonemes onto ARPAbet so a synthesised phone
sequence can be matched against an ARPAbet alignment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from dataclasses import dataclass

import numpy as np

LIBRARY_NAMES = ("espeak-ng", "libespeak-ng.so.1")
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_PHONEME_IPA = 0x0002
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_PHONEME = 7
PARAM_RATE = 1
POS_CHARACTER = 1
CHARS_UTF8 = 1

# espeak-ng's en-us phonemes (IPA names, length marks kept) -> ARPAbet without stress.
IPA_TO_ARPABET = {
    "ɪ": "IH",
    "ᵻ": "IH",
    "i": "IY",
    "iː": "IY",
    "ɛ": "EH",
    "e": "EH",
    "æ": "AE",
    "a": "AE",
    "ɑ": "AA",
    "ɑː": "AA",
    "ɒ": "AA",
    "ʌ": "AH",
    "ə": "AH",
    "ɐ": "AH",
    "ɚ": "ER",
    "ɜː": "ER",
    "ɝ": "ER",
    "ɔ": "AO",
    "ɔː": "AO",
    "ʊ": "UH",
    "u": "UW",
    "uː": "UW",
    "eɪ": "EY",
    "aɪ": "AY",
    "aʊ": "AW",
    "oʊ": "OW",
    "əʊ": "OW",
    "ɔɪ": "OY",
    "p": "P",
    "b": "B",
    "t": "T",
    "d": "D",
    "k": "K",
    "ɡ": "G",
    "g": "G",
    "f": "F",
    "v": "V",
    "θ": "TH",
    "ð": "DH",
    "s": "S",
    "z": "Z",
    "ʃ": "SH",
    "ʒ": "ZH",
    "h": "HH",
    "m": "M",
    "n": "N",
    "ŋ": "NG",
    "l": "L",
    "ɹ": "R",
    "r": "R",
    "w": "W",
    "j": "Y",
    "tʃ": "CH",
    "dʒ": "JH",
    "ɾ": "T",
    "ʔ": "T",
}


class _EventId(ctypes.Union):
    """The ``id`` union of ``espeak_EVENT``."""

    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` of speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Phoneme:
    """One synthesised phoneme: espeak's IPA name and its start time in seconds."""

    ipa: str
    start: float

    @property
    def arpabet(self) -> str | None:
        """ARPAbet of the phoneme (no stress digit), or None when it has none (pauses, stress)."""
        return IPA_TO_ARPABET.get(self.ipa)


@dataclass(frozen=True)
class Speech:
    """Synthesised audio (N,) float32 in [-1, 1] at ``sample_rate``, its phonemes and words."""

    audio: np.ndarray
    sample_rate: int
    phonemes: tuple[Phoneme, ...]
    word_starts: tuple[float, ...]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.audio) / self.sample_rate


class _Engine:
    """The initialised library with a callback collecting samples and events (one per process)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        """Initialise espeak-ng in synchronous mode with IPA phoneme events."""
        self.lib = lib
        self.sample_rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, None, INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {self.sample_rate})")
        self.lock = threading.Lock()
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, str, int]] = []
        self.callback = _CALLBACK(self._collect)  # kept referenced while the library holds it
        lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), n: int, events: object) -> int:
        """Synthesis callback: copy the samples and the phoneme and word events."""
        if wav and n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == EVENT_PHONEME:
                self.events.append(
                    (EVENT_PHONEME, e.id.string.decode("utf-8", "replace"), e.sample)
                )
            elif e.type == EVENT_WORD:
                self.events.append((EVENT_WORD, "", e.sample))
            i += 1
        return 0

    def synth(self, text: str, voice: str, rate: int) -> tuple[np.ndarray, list]:
        """int16 samples at the engine's rate and the (type, name, sample) events of ``text``."""
        with self.lock:
            self.chunks, self.events = [], []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            self.lib.espeak_SetParameter(PARAM_RATE, int(rate), 0)
            data = text.encode("utf-8")
            err = self.lib.espeak_Synth(
                data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None
            )
            self.lib.espeak_Synchronize()
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with code {err} for {text!r}")
            audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
            return audio, list(self.events)


@functools.cache
def _engine() -> _Engine:
    """Load and initialise libespeak-ng once."""
    for name in LIBRARY_NAMES:
        path = ctypes.util.find_library(name) or name
        try:
            return _Engine(ctypes.CDLL(path))
        except OSError:
            continue
    raise OSError(
        "libespeak-ng not found: install espeak-ng and libespeak-ng1 (Debian/Ubuntu: apt-get "
        "install espeak-ng libespeak-ng1; `make install` does it where it can)"
    )


def available() -> bool:
    """Whether libespeak-ng loads and initialises here."""
    try:
        _engine()
    except (OSError, RuntimeError):
        return False
    return True


def synthesize(
    text: str, voice: str = "en-us", rate: int = 150, sample_rate: int = 16000
) -> Speech:
    """Speak ``text`` with espeak-ng; return the audio at ``sample_rate`` and phoneme start times.

    Phoneme events with an empty name (pauses) are dropped. ``rate`` is in words per minute
    (80-450). Raises OSError when libespeak-ng is not installed.
    """
    import soxr

    engine = _engine()
    raw, events = engine.synth(text, voice, rate)
    sr = engine.sample_rate
    audio = raw.astype(np.float32) / 32768.0
    if sample_rate != sr:
        audio = soxr.resample(audio, sr, sample_rate).astype(np.float32)
    phonemes = tuple(
        Phoneme(name, s / sr) for kind, name, s in events if kind == EVENT_PHONEME and name
    )
    words = tuple(s / sr for kind, _, s in events if kind == EVENT_WORD)
    return Speech(audio, sample_rate, phonemes, words)
