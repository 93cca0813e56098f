"""Test media made with PyAV and espeak-ng: clips cut from the fixture video, speech, bad files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agcc.extract import espeak

from .conftest import shared_path

FIXTURE_VIDEO = ("fixtures", "video", "WolfgangLanger_Pexels.mp4")
VIDEO_CODECS = {".flv": "flv", ".avi": "mpeg4", ".mp4": "mpeg4"}
AUDIO_CODECS = {".flv": "mp3", ".avi": "mp3", ".mp4": "aac"}


def fixture_video() -> Path:
    """The shared real face video, or skip when ../shared is absent."""
    return shared_path(*FIXTURE_VIDEO)


def need_espeak() -> None:
    """Skip the calling test when libespeak-ng cannot be loaded."""
    if not espeak.available():
        pytest.skip("libespeak-ng not installed (apt-get install espeak-ng libespeak-ng1)")


def speech(text: str, pad: float = 0.3, rate: int = 150) -> tuple[np.ndarray, espeak.Speech]:
    """espeak-ng speech of ``text`` at 16 kHz with ``pad`` s of faint noise on both sides."""
    sp = espeak.synthesize(text, rate=rate)
    gap = np.zeros(int(pad * sp.sample_rate), np.float32)
    audio = np.concatenate([gap, sp.audio, gap])
    noise = np.random.default_rng(len(text)).normal(0.0, 1e-3, len(audio))
    return (audio + noise).astype(np.float32), sp


def write_wav(path: Path, audio: np.ndarray, sample_rate: int = 16000) -> Path:
    """A 16-bit PCM wav file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate, subtype="PCM_16")
    return path


def cut_video(
    src: Path,
    dst: Path,
    start: float,
    seconds: float,
    audio: np.ndarray | None = None,
    width: int = 480,
    height: int = 270,
) -> Path:
    """Re-encode ``seconds`` of ``src`` from ``start`` (scaled), with 16 kHz ``audio`` if given."""
    import av

    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        rate = inp.streams.video[0].average_rate
        vs = out.add_stream(VIDEO_CODECS[dst.suffix], rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.bit_rate = 1_000_000
        aus = _audio_stream(out, AUDIO_CODECS[dst.suffix]) if audio is not None else None
        n = 0
        for frame in inp.decode(video=0):
            if frame.time < start:
                continue
            if n >= round(seconds * rate):
                break
            img = frame.reformat(width=width, height=height, format="yuv420p")
            img.pts, img.time_base = n, Fraction(1) / rate
            out.mux(vs.encode(img))
            n += 1
        out.mux(vs.encode(None))
        if aus is not None:
            _encode_audio(out, aus, audio)
    return dst


def _audio_stream(out: object, codec: str) -> object:
    """A mono audio stream (mp3 at 22,050 Hz, else 16 kHz) added to an output container."""
    stream = out.add_stream(codec, rate=22050 if codec == "mp3" else 16000)
    stream.layout = "mono"
    return stream


def _encode_audio(out: object, stream: object, audio: np.ndarray, sample_rate: int = 16000) -> None:
    """Encode mono float audio at ``sample_rate`` into ``stream`` of an open container."""
    import av

    samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None, :]  # (1, N)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = sample_rate
    resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=stream.rate)
    for f in [*resampler.resample(frame), *resampler.resample(None)]:
        out.mux(stream.encode(f))
    out.mux(stream.encode(None))


def faceless_video(dst: Path, seconds: float = 1.0, fps: int = 10) -> Path:
    """A video of smooth grey noise (no face), no audio stream."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(dst), "w") as out:
        vs = out.add_stream(VIDEO_CODECS[dst.suffix], rate=fps)
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.repeat(rng.integers(60, 190, (30, 40, 1), dtype=np.uint8), 3, axis=2)
            img = np.kron(img, np.ones((4, 4, 1), np.uint8))  # (120, 160, 3)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return dst
