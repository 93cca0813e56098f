"""The two simulated corpora: recording set-ups, talkers and the list of utterances.

Everything here is decided before any audio is made, from the seed alone, so the parallel and
the serial builds see the same plan. Emotions and sentences are balanced per talker: talker s's
i-th clip has emotion (i + s) mod 4 and a sentence that changes every four clips, so with 48
clips a CREMA-D actor says each of the 12 sentences in each of the four emotions once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np

from agcc.demo.articulation import Habits
from agcc.demo.face import Camera, FaceGeometry, make_face
from agcc.demo.lexicon import CREMA_SENTENCES, IMPROV_SENTENCES
from agcc.demo.synth import Channel
from agcc.params import DemoCorpusSize

Kind = Literal["crema", "improv"]
FOUR = ("neutral", "anger", "happiness", "sadness")
CREMA_CODES = {
    "neutral": "NEU",
    "anger": "ANG",
    "happiness": "HAP",
    "sadness": "SAD",
    "disgust": "DIS",
    "fear": "FEA",
}
IMPROV_CODES = {"neutral": "N", "anger": "A", "happiness": "H", "sadness": "S"}
CREMA_MAX_PER_ACTOR = 4 * len(CREMA_SENTENCES)  # one neutral take per sentence
_RACES = (("Caucasian", 0.6), ("African American", 0.2), ("Asian", 0.12), ("Unknown", 0.08))


@dataclass(frozen=True)
class CorpusSpec:
    """Recording set-up and speaking conditions of one corpus."""

    kind: str
    code: int  # enters every random stream, so the corpora differ under one seed
    channel: Channel
    camera: Camera
    silence: tuple[float, float]  # range of leading / trailing silence (s)
    level_dbfs: float  # neutral speech level
    pause_prob: float  # chance of a short pause between two words
    openface: str  # OpenFace CSV layout version


CREMA = CorpusSpec(
    kind="crema",
    code=0,
    channel=Channel(16000, 60.0, 0.35, None, 0.15, 0.05, -62.0),
    camera=Camera(
        fps=30.0,
        scale_px=(62.0, 5.0),
        centre_px=(240.0, 170.0),
        centre_sd_px=12.0,
        roll_sd_deg=2.0,
        yaw_sd_deg=3.0,
        sway_deg=1.0,
        drift_px=2.0,
        noise_px=0.5,
        confidence=(0.95, 0.02),
        fail_rate=0.006,
        lowconf_rate=0.008,
        dropout_rate=0.02,
    ),
    silence=(0.2, 0.45),
    level_dbfs=-26.0,
    pause_prob=0.03,
    openface="2.2",
)
IMPROV = CorpusSpec(
    kind="improv",
    code=1,
    channel=Channel(22050, 90.0, -0.35, 7000.0, 0.35, 0.25, -50.0, -60.0),
    camera=Camera(
        fps=29.97,
        scale_px=(85.0, 10.0),
        centre_px=(720.0, 500.0),
        centre_sd_px=60.0,
        roll_sd_deg=5.0,
        yaw_sd_deg=9.0,
        sway_deg=3.0,
        drift_px=10.0,
        noise_px=1.0,
        confidence=(0.9, 0.04),
        fail_rate=0.008,
        lowconf_rate=0.01,
        dropout_rate=0.02,
    ),
    silence=(0.25, 0.6),
    level_dbfs=-28.0,
    pause_prob=0.12,
    openface="2.0",
)
SPECS: dict[str, CorpusSpec] = {"crema": CREMA, "improv": IMPROV}


@dataclass(frozen=True)
class Speaker:
    """One simulated talker: identity, voice, articulation habits and face."""

    speaker_id: str
    index: int
    gender: str  # "F" or "M"
    session: int  # MSP-IMPROV session (0 for CREMA-D)
    age: int
    race: str
    ethnicity: str
    f0_hz: float
    vtl: float
    glottal_hz: float
    level_db: float
    habits: Habits
    face: FaceGeometry
    motion: float


@dataclass(frozen=True)
class UttPlan:
    """One utterance to generate: its name, talker, sentence, emotion and file paths."""

    index: int
    utt_id: str
    speaker: int
    sentence: str
    text: str
    emotion: str
    code: str  # CREMA-D emotion code or MSP-IMPROV target letter
    level: str  # CREMA-D level (LO MD HI XX) or MSP-IMPROV scenario (R S P)
    wav: str  # relative to the corpus root


def rng_for(seed: int, spec: CorpusSpec, stream: int, *key: int) -> np.random.Generator:
    """Independent random stream for (seed, corpus, stream kind, key...)."""
    return np.random.default_rng(np.random.SeedSequence([seed, spec.code, stream, *key]))


def make_speaker(spec: CorpusSpec, index: int, seed: int) -> Speaker:
    """Talker ``index``: CREMA-D actors 1001.. (M, F alternating); MSP-IMPROV F0n, M0n."""
    rng = rng_for(seed, spec, 1, index)
    if spec.kind == "crema":
        gender, session, sid = ("M", "F")[index % 2], 0, str(1001 + index)
    else:
        gender, session = ("F", "M")[index % 2], index // 2 + 1
        sid = f"{gender}{session:02d}"
    female = gender == "F"
    names, probs = zip(*_RACES, strict=True)
    habits = Habits(
        jaw_gain=rng.normal(1.0, 0.08),
        spread_offset=rng.normal(0.0, 0.06),
        round_gain=rng.normal(1.0, 0.1),
        tension=rng.normal(1.0, 0.08),
        duration=rng.normal(1.0, 0.07),
    )
    return Speaker(
        speaker_id=sid,
        index=index,
        gender=gender,
        session=session,
        age=int(rng.integers(20, 75)),
        race=str(rng.choice(names, p=probs)),
        ethnicity="Hispanic" if rng.random() < 0.15 else "Not Hispanic",
        f0_hz=rng.normal(205.0, 18.0) if female else rng.normal(115.0, 12.0),
        vtl=rng.normal(1.17, 0.04) if female else rng.normal(1.0, 0.04),
        glottal_hz=rng.normal(90.0, 12.0) if female else rng.normal(75.0, 10.0),
        level_db=rng.normal(0.0, 1.5),
        habits=habits,
        face=make_face(rng),
        motion=float(rng.lognormal(0.0, 0.25)),
    )


def plan_crema(size: DemoCorpusSize, other_share: float) -> list[UttPlan]:
    """CREMA-D clips: per actor ``utts_per_speaker`` four-emotion clips, then DIS/FEA extras."""
    if size.utts_per_speaker > CREMA_MAX_PER_ACTOR:
        raise ValueError(
            f"demo.crema.utts_per_speaker must be <= {CREMA_MAX_PER_ACTOR} (12 sentences x 4 "
            f"emotions, one neutral take per sentence), got {size.utts_per_speaker}"
        )
    codes = list(CREMA_SENTENCES)
    n_four = size.n_speakers * size.utts_per_speaker
    n_extra = int(np.floor(n_four * other_share / (1.0 - other_share) + 0.5))
    if n_extra > 24 * size.n_speakers:
        raise ValueError(f"demo.other_emotion_share={other_share} needs too many DIS/FEA clips")
    plans: list[UttPlan] = []
    for s in range(size.n_speakers):
        clips = [
            (codes[(i // 4 + 3 * s) % 12], FOUR[(i + s) % 4], i)
            for i in range(size.utts_per_speaker)
        ]
        n_mine = len(range(s, n_extra, size.n_speakers))
        clips += [
            (codes[(k // 2 + 5 * s) % 12], ("disgust", "fear")[k % 2], k) for k in range(n_mine)
        ]
        for sent, emotion, i in clips:
            plans.append(_crema_plan(len(plans), s, sent, emotion, i))
    return plans


def _crema_plan(index: int, s: int, sent: str, emotion: str, i: int) -> UttPlan:
    """One CREMA-D clip: levels LO/MD/HI only for the emotional IEO takes, as in CREMA-D."""
    code = CREMA_CODES[emotion]
    level = ("LO", "MD", "HI")[(s + i) % 3] if sent == "IEO" and emotion != "neutral" else "XX"
    utt = f"{1001 + s}_{sent}_{code}_{level}"
    return UttPlan(
        index, utt, s, sent, CREMA_SENTENCES[sent], emotion, code, level, f"AudioWAV/{utt}.wav"
    )


def plan_improv(size: DemoCorpusSize) -> list[UttPlan]:
    """MSP-IMPROV utterances: talker F0n / M0n of session n, scenario cycling R P S."""
    if size.n_speakers % 2 or size.n_speakers // 2 > 9:
        raise ValueError(
            f"demo.improv.n_speakers must be even and at most 18 (sessions 1..9), "
            f"got {size.n_speakers}"
        )
    turns: Counter[str] = Counter()
    plans: list[UttPlan] = []
    for s in range(size.n_speakers):
        for i in range(size.utts_per_speaker):
            plans.append(_improv_plan(len(plans), s, i, turns))
    return plans


def _improv_plan(index: int, s: int, i: int, turns: Counter[str]) -> UttPlan:
    """Talker s's i-th utterance; ``turns`` numbers the turns of each name stem from 01."""
    codes = list(IMPROV_SENTENCES)
    gender, session = ("F", "M")[s % 2], s // 2 + 1
    j = (i // 4 + 7 * (s // 2) + 3 * (s % 2)) % len(codes)
    sent, emotion, scenario = codes[j], FOUR[(i + s) % 4], "RPS"[i % 3]
    pair = "FM" if (session + j) % 2 == 0 else "MF"
    target = f"{sent}{IMPROV_CODES[emotion]}"
    stem = f"MSP-IMPROV-{target}-{gender}{session:02d}-{scenario}-{pair}"
    turns[stem] += 1
    if turns[stem] > 99:
        raise ValueError(f"more than 99 turns for {stem}: lower demo.improv.utts_per_speaker")
    utt = f"{stem}{turns[stem]:02d}"
    return UttPlan(
        index=index,
        utt_id=utt,
        speaker=s,
        sentence=sent,
        text=IMPROV_SENTENCES[sent],
        emotion=emotion,
        code=IMPROV_CODES[emotion],
        level=scenario,
        wav=f"Audio/session{session}/{target}/{scenario}/{utt}.wav",
    )


def plan_corpus(kind: str, size: DemoCorpusSize, other_share: float) -> list[UttPlan]:
    """The utterance list of one corpus."""
    if kind == "crema":
        return plan_crema(size, other_share)
    if kind == "improv":
        return plan_improv(size)
    raise ValueError(f"demo corpus kind must be 'crema' or 'improv', got {kind!r}")
