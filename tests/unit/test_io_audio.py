"""The one audio reader (agcc.io.audio): features stage and aligner read audio the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agcc.io.audio import audio_duration, read_audio
from agcc.skips import InputError

from ..media import faceless_video, write_wav


def _tone(seconds: float, rate: int, amp: float = 0.3) -> np.ndarray:
    """A 220 Hz sine (n,) float32."""
    return (amp * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32
    )


def _mka(path: Path, audio: np.ndarray, rate: int = 16000) -> Path:
    """Mono 16-bit PCM audio in a Matroska container (which soundfile cannot read)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


def test_reads_mono_16k_and_resamples(tmp_path: Path) -> None:
    write_wav(tmp_path / "tone.wav", _tone(1.0, 22050), 22050)
    wave = read_audio(tmp_path / "tone.wav")
    assert wave.dtype == np.float32 and len(wave) == 16000
    assert audio_duration(tmp_path / "tone.wav") == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "samples", "reason"),
    [
        ("silent.wav", np.zeros(8000, np.float32), "silent audio"),
        ("step.wav", np.full(8000, 1 / 32768, np.float32), "silent audio"),
        ("short.wav", _tone(0.02, 16000), "too short"),
    ],
)
def test_rejects_silent_and_short_audio(
    tmp_path: Path, name: str, samples: np.ndarray, reason: str
) -> None:
    path = write_wav(tmp_path / name, samples)
    with pytest.raises(InputError, match=reason) as err:
        read_audio(path)
    assert err.value.path == str(path)


def test_quiet_speech_above_one_16bit_step_is_kept(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "quiet.wav", _tone(0.5, 16000, amp=5e-4))
    assert np.abs(read_audio(path)).max() > 1 / 32768


def test_rejects_non_finite_missing_and_unreadable_files(tmp_path: Path) -> None:
    nan = _tone(0.5, 16000)
    nan[10] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wav")
    for name, reason in [
        ("nan.wav", "non-finite"),
        ("missing.wav", "missing file"),
        ("junk.wav", "unreadable audio"),
    ]:
        with pytest.raises(InputError, match=reason) as err:
            read_audio(tmp_path / name)
        assert err.value.path == str(tmp_path / name)
    with pytest.raises(InputError, match="missing file"):
        audio_duration(tmp_path / "missing.wav")


def test_containers_soundfile_cannot_read_are_decoded_with_pyav(tmp_path: Path) -> None:
    tone = _tone(0.5, 16000)
    path = _mka(tmp_path / "clip.mka", tone)
    wave = read_audio(path)
    assert len(wave) == pytest.approx(8000, abs=16)
    assert np.abs(wave[: len(tone)] - tone[: len(wave)]).max() < 1e-3
    assert audio_duration(path) == pytest.approx(0.5, abs=0.01)


def test_a_video_without_audio_is_rejected_naming_the_file(tmp_path: Path) -> None:
    video = faceless_video(tmp_path / "mute.mp4")
    with pytest.raises(InputError, match="no audio stream") as err:
        read_audio(video)
    assert err.value.path == str(video)


@pytest.mark.parametrize("seconds", [0.05, 0.199])
def test_audio_shorter_than_an_utterance_is_too_short(tmp_path: Path, seconds: float) -> None:
    path = write_wav(tmp_path / "short.wav", _tone(seconds, 16000))
    for read in (read_audio, audio_duration):
        with pytest.raises(InputError, match=r"too short: .* ms < 200 ms") as err:
            read(path)
        assert err.value.kind == "too_short_audio"
    assert len(read_audio(write_wav(tmp_path / "ok.wav", _tone(0.2, 16000)))) == 3200


def test_half_downloaded_wav_is_truncated_not_shorter(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "cut.wav", _tone(2.0, 16000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for read in (read_audio, audio_duration):
        with pytest.raises(InputError, match=r"truncated file: .* holds .* \(50%\)") as err:
            read(path)
        assert err.value.kind == "truncated_audio"
