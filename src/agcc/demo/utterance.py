"""Generate one utterance end to end: timing, articulation, audio, face track, labels, files.

Every random draw comes from streams keyed by (seed, corpus, utterance index), so utterances can
be made in any order or process and still give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agcc.demo import face, labels, writers
from agcc.demo.articulation import (
    Timeline,
    control_times,
    plan_timeline,
    source_controls,
    trajectories,
)
from agcc.demo.corpus import CorpusSpec, Speaker, UttPlan, rng_for
from agcc.demo.lexicon import pronounce, to_ipa
from agcc.demo.prosody import f0_contour, gain_contour
from agcc.demo.styles import Style, emotion_style
from agcc.demo.synth import Voice, apply_channel, normalise, room_response, synthesize, to_pcm16
from agcc.io.openface import write_openface
from agcc.io.textgrid import write_textgrid

_LEVEL_INTENSITY = {"LO": 0.6, "MD": 1.0, "HI": 1.4, "XX": 1.0}
_SCENARIO = {"R": (0.9, 1.0), "P": (1.1, 0.97), "S": (0.8, 0.92)}  # intensity, duration factor
QUESTIONS = frozenset({"S10"})
_STREAMS = ("timing", "articulation", "audio", "face", "labels")


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to write one utterance."""

    spec: CorpusSpec
    plan: UttPlan
    speaker: Speaker
    root: str
    seed: int
    other_share: float


def _streams(job: Job) -> dict[str, np.random.Generator]:
    """Named independent random streams of one utterance."""
    seq = np.random.SeedSequence([job.seed, job.spec.code, 2, job.plan.index])
    return {name: np.random.default_rng(s) for name, s in zip(_STREAMS, seq.spawn(5), strict=True)}


def _intensity(job: Job, rng: np.random.Generator) -> tuple[float, float]:
    """Emotional intensity and the scenario's duration factor of one utterance."""
    if job.spec.kind == "crema":
        return _LEVEL_INTENSITY[job.plan.level] * rng.lognormal(0.0, 0.1), 1.0
    base, dur = _SCENARIO[job.plan.level]
    return base * rng.lognormal(0.0, 0.15), dur


@dataclass(frozen=True)
class Simulation:
    """The simulated talker's plan and control tracks for one utterance."""

    style: Style
    intensity: float
    rate: float
    words: list[tuple[str, tuple[str, ...]]]
    tl: Timeline
    t: np.ndarray  # control grid (T,)
    ctrl: dict[str, np.ndarray]  # artic (T, 6), f0, voicing, nasal, noise (T, 4), gain_db ...
    accent: np.ndarray  # pitch-accent contour (T,) in semitones


def simulate(job: Job, rng: dict[str, np.random.Generator]) -> Simulation:
    """Timing, articulation and prosody of one utterance (no files)."""
    intensity, scenario_dur = _intensity(job, rng["timing"])
    style = emotion_style(job.plan.emotion, intensity)
    spk, spec = job.speaker, job.spec
    silences = tuple(rng["timing"].uniform(*spec.silence, size=2))
    rate = style.duration * spk.habits.duration * scenario_dur
    words = pronounce(job.plan.text)
    tl = plan_timeline(words, rate, silences, spec.pause_prob, rng["timing"])
    t = control_times(tl.duration)
    ctrl = source_controls(t, tl)
    ctrl["artic"] = trajectories(t, tl, style, spk.habits, rng["articulation"])
    question = job.plan.sentence in QUESTIONS
    f0_level = spk.f0_hz * style.f0_mult
    ctrl["f0"], accent = f0_contour(t, tl, f0_level, style.f0_range, question, rng["audio"])
    ctrl["gain_db"] = gain_contour(t, tl, ctrl["stressed"])
    return Simulation(style, intensity, rate, words, tl, t, ctrl, accent)


def generate(job: Job) -> dict[str, object]:
    """Write the utterance's files (wav, landmarks, TextGrid, transcript); return its truth row."""
    rng = _streams(job)
    sim = simulate(job, rng)
    root = Path(job.root)
    truth = _latent(job, sim)
    truth |= _audio(job, sim, root, rng["audio"])
    truth |= _landmarks(job, sim, root, rng["face"])
    truth |= _labels(job, sim.intensity, rng["labels"])
    _textgrid(job, sim, float(truth["duration_s"]), root, rng["timing"])
    return truth | {"wav": job.plan.wav}


def _latent(job: Job, sim: Simulation) -> dict[str, object]:
    """Ground-truth identity and latent variables of the utterance."""
    spk, ctrl, style = job.speaker, sim.ctrl, sim.style
    voiced = ctrl["voicing"] > 0.5
    vowel = voiced & (ctrl["nasal"] < 0.5)
    return {
        "utt_id": job.plan.utt_id,
        "corpus": f"demo_{job.spec.kind}",
        "speaker": spk.speaker_id,
        "gender": spk.gender,
        "session": spk.session,
        "sentence": job.plan.sentence,
        "text": job.plan.text,
        "emotion": job.plan.emotion,
        "code": job.plan.code,
        "level": job.plan.level,
        "intensity": sim.intensity,
        "speech_start_s": sim.tl.speech_start,
        "speech_end_s": sim.tl.speech_end,
        "n_phones": len(sim.tl.tokens),
        "f0_speaker_hz": spk.f0_hz,
        "f0_mean_hz": float(ctrl["f0"][voiced].mean()),
        "jaw_mean": float(ctrl["artic"][vowel, 0].mean()),
        "spread_mean": float(ctrl["artic"][vowel, 1].mean()),
        "round_mean": float(ctrl["artic"][vowel, 2].mean()),
        "jaw_gain": style.jaw_gain * spk.habits.jaw_gain,
        "spread_offset": style.spread_offset + spk.habits.spread_offset,
        "tension": style.tension * spk.habits.tension,
        "duration_factor": sim.rate,
        "vtl": spk.vtl,
    }


def _audio(job: Job, sim: Simulation, root: Path, rng: np.random.Generator) -> dict[str, object]:
    """Synthesise, normalise, pass through the channel and write the wav; returns truth fields."""
    spk, ch, tl, style = job.speaker, job.spec.channel, sim.tl, sim.style
    n = int(round(tl.duration * ch.sr))
    voice = Voice(
        vtl=spk.vtl,
        glottal_hz=spk.glottal_hz * np.exp(-40.0 * style.glottal_r),
        jitter=style.jitter,
        breath=style.breath,
    )
    x = synthesize(sim.t, sim.ctrl, voice, n, ch.sr, rng)
    ts = np.arange(n) / ch.sr
    speech = (ts >= tl.speech_start) & (ts < tl.speech_end)
    level = job.spec.level_dbfs + style.level_db + spk.level_db + rng.normal(0.0, 1.0)
    room = room_response(ch, rng_for(job.seed, job.spec, 3, spk.session))
    y = apply_channel(normalise(x, speech, level), ch, room, rng)
    writers.write_wav(root / job.plan.wav, to_pcm16(y), ch.sr)
    return {
        "duration_s": n / ch.sr,
        "sample_rate": ch.sr,
        "level_dbfs": level,
        "snr_db": level - ch.noise_dbfs,
        "rt60_s": ch.rt60,
    }


def _landmarks(
    job: Job, sim: Simulation, root: Path, rng: np.random.Generator
) -> dict[str, object]:
    """Sample the face at the corpus frame rate, write the OpenFace CSV; returns truth fields."""
    cam, spk, style, t = job.spec.camera, job.speaker, sim.style, sim.t
    tf = np.arange(int(np.floor(sim.tl.duration * cam.fps))) / cam.fps
    visible = np.stack([np.interp(tf, t, sim.ctrl["artic"][:, d]) for d in range(4)], axis=1)
    brow = style.brow + 0.015 * np.interp(tf, t, sim.accent)
    pts = face.face_frames(spk.face, visible, style.corner, brow, face.blinks(tf, rng))
    px, pose = face.project(pts, spk.face.depth, tf, cam, style.motion * spk.motion, rng)
    lm, conf, success, dropout = face.tracker_output(px, cam, rng)
    csv_path = f"openface/{job.plan.utt_id}.csv"
    write_openface(root / csv_path, tf, conf, success, lm, job.spec.openface)
    return {
        **pose,
        "fps": cam.fps,
        "n_frames": len(tf),
        "n_failed_frames": int((success == 0).sum()),
        "n_lowconf_frames": int(((conf < 0.5) & (success == 1)).sum()),
        "dropout": dropout,
        "landmarks": csv_path,
    }


def _labels(job: Job, intensity: float, rng: np.random.Generator) -> dict[str, object]:
    """Perceptual labels of the utterance (votes or consensus + rater lines)."""
    if job.spec.kind == "crema":
        votes = labels.crema_votes(job.plan.emotion, intensity, rng)
        return {"label": votes["VoiceVote"], **votes}
    consensus = labels.improv_consensus(job.plan.emotion, job.other_share, rng)
    lines = labels.improv_evaluation(job.plan.utt_id, job.plan.emotion, consensus, rng)
    return {"label": consensus, "evaluation": "\n".join(lines)}


def _jittered_bounds(tl: Timeline, duration: float, rng: np.random.Generator) -> dict:
    """Aligner-like boundaries: true times + N(0, 4 ms), on a 10 ms grid, strictly increasing."""
    times = sorted({x for tok in tl.tokens for x in (tok.start, tok.end)})
    moved = np.round((np.array(times) + rng.normal(0.0, 0.004, len(times))) * 100) / 100
    for i in range(1, len(moved)):
        moved[i] = max(moved[i], round(moved[i - 1] + 0.01, 2))
    moved = np.clip(moved, 0.0, duration)
    return {t: float(m) for t, m in zip(times, moved, strict=True)}


def _textgrid(
    job: Job, sim: Simulation, duration: float, root: Path, rng: np.random.Generator
) -> None:
    """Write the MFA-layout TextGrid (ARPAbet for CREMA-D, english_mfa IPA for MSP-IMPROV)."""
    tl, words = sim.tl, sim.words
    at = _jittered_bounds(tl, duration, rng)
    ipa = job.spec.kind == "improv"
    labels_ = [p for _, phones in words for p in (to_ipa(phones) if ipa else phones)]
    tokens = zip(tl.tokens, labels_, strict=True)
    phones = [(at[tok.start], at[tok.end], lab) for tok, lab in tokens]
    word_rows = [(at[s], at[e], w) for w, s, e in tl.words]
    path = root / "textgrids" / f"{job.plan.utt_id}.TextGrid"
    write_textgrid(path, word_rows, phones, duration)
    if ipa:
        writers.write_lines(root / "transcripts" / f"{job.plan.utt_id}.txt", [job.plan.text])
