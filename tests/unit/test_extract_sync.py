"""Video timestamps on the audio's clock: a first video frame that starts late keeps its delay."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from agcc.extract.face import clock_start, decode_frames, video_delay
from agcc.skips import InputError

av = pytest.importorskip("av")


def late_video(dst: Path, delay: float, audio: bool, fps: int = 25, n: int = 8) -> Path:
    """Grey frames whose first presentation time is ``delay`` s, with mp3 audio from 0 if asked."""
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("flv", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.time_base = Fraction(1, 1000)
        aus = out.add_stream("mp3", rate=22050) if audio else None
        if aus is not None:
            aus.layout = "mono"
        for i in range(n):
            img = np.full((48, 64, 3), 20 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = round((delay + i / fps) * 1000), Fraction(1, 1000)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if aus is not None:
            tone = (np.sin(np.arange(22050 * n // fps) / 5) * 3000).astype(np.int16)[None]  # (1, N)
            af = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            af.sample_rate, af.pts, af.time_base = 22050, 0, Fraction(1, 22050)
            resampler = av.AudioResampler(format=aus.format.name, layout="mono", rate=22050)
            for f in [*resampler.resample(af), *resampler.resample(None)]:
                out.mux(aus.encode(f))
            out.mux(aus.encode(None))
    return dst


def _starts(path: Path) -> tuple[float, float]:
    """(video, audio) stream start times in seconds, read from the container."""
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        return float(v.start_time * v.time_base), float(a.start_time * a.time_base)


def test_first_frame_keeps_its_delay_against_the_audio(tmp_path: Path) -> None:
    path = late_video(tmp_path / "late.flv", delay=0.027, audio=True)
    video_start, audio_start = _starts(path)
    assert video_start - audio_start >= 0.025  # the file really starts its video late
    times = [t for t, _ in decode_frames(path)]
    assert times[0] == pytest.approx(video_start - audio_start, abs=1e-6)
    np.testing.assert_allclose(np.diff(times), 0.04, atol=1.5e-3)  # 25 fps, ms time base
    with av.open(str(path)) as c:
        assert clock_start(c) == pytest.approx(audio_start)


def test_without_audio_the_container_start_is_zero(tmp_path: Path) -> None:
    path = late_video(tmp_path / "mute.flv", delay=0.027, audio=False)
    times = [t for t, _ in decode_frames(path)]
    assert times[0] == pytest.approx(0.0, abs=1e-6) and len(times) == 8


def test_video_delay_is_read_without_decoding(tmp_path: Path) -> None:
    path = late_video(tmp_path / "late.flv", delay=0.027, audio=True)
    first = next(iter(decode_frames(path)))[0]
    assert video_delay(path) == pytest.approx(first, abs=1e-6) and first > 0.02
    with pytest.raises(InputError, match="unreadable video"):
        video_delay(tmp_path / "none.flv")
