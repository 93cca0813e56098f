"""Audio input: one reader for every stage (features encoders, the built-in aligner).

Files are read with soundfile (wav, flac, ogg, ...); anything soundfile cannot open (e.g. the
audio track of a .flv or .mp4 video) is decoded with PyAV. Samples are mixed to mono (channel
mean) and resampled to 16 kHz with soxr (quality HQ; PyAV-decoded audio is resampled by FFmpeg).
Bad audio raises :class:`~agcc.skips.InputError` naming the file: missing, unreadable, no audio
stream, zero length, truncated (a header that declares more samples than the file holds, as a
half-downloaded or cut file has), NaN/inf samples, silent (peak <= one 16-bit step) or shorter
than :data:`MIN_SECONDS` (no utterance fits in it; a couple of frames are no prediction).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from agcc.framing import SAMPLE_RATE
from agcc.skips import InputError

#: Peak amplitude at or below one 16-bit step counts as silence (an all-zero file).
SILENCE_PEAK = 1.0 / 32768
_SF_ERRORS = (sf.LibsndfileError, sf.SoundFileError, RuntimeError, OSError)
#: Shortest usable utterance in seconds: 10 frames at 50 frames/s (a 0.05 s clip is a fault).
MIN_SECONDS = 0.2
#: libsndfile's note on a WAV whose data chunk runs past the end of the file.
_DATA_SHORT = re.compile(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)")


def _check_exists(path: Path) -> None:
    """InputError when ``path`` is not a file."""
    if not path.is_file():
        raise InputError(path, "missing file: no such audio file")


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header; InputError when missing, unreadable or empty."""
    path = Path(path)
    _check_exists(path)
    try:
        info = sf.info(str(path))
        frames, rate = info.frames, info.samplerate
    except _SF_ERRORS:
        seconds = len(_decode_av(path)) / SAMPLE_RATE
    else:
        if frames <= 0 or rate <= 0:
            raise InputError(path, f"zero length: {frames} samples")
        _check_complete(path, info)
        seconds = frames / rate
    _check_length(path, seconds)
    return seconds


def _check_complete(path: Path, info: object) -> None:
    """InputError when the header declares more audio data than the file holds (truncated)."""
    m = _DATA_SHORT.search(getattr(info, "extra_info", "") or "")
    if m and int(m.group(2)) < int(m.group(1)):
        declared, held = int(m.group(1)), int(m.group(2))
        raise InputError(
            path,
            f"truncated file: the header declares {declared} bytes of audio data, the file "
            f"holds {held} ({held / max(declared, 1):.0%}); a cut or half-downloaded file",
            kind="truncated_audio",
        )


def _check_length(path: Path, seconds: float) -> None:
    """InputError when the audio is shorter than :data:`MIN_SECONDS`."""
    if seconds < MIN_SECONDS:
        raise InputError(
            path,
            f"too short: {seconds * 1000:.1f} ms < {MIN_SECONDS * 1000:.0f} ms",
            kind="too_short_audio",
        )


def read_audio(path: str | Path) -> np.ndarray:
    """Mono float32 samples at 16 kHz; InputError naming the file on bad audio (see module)."""
    path = Path(path)
    _check_exists(path)
    try:
        _check_complete(path, sf.info(str(path)))
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
    except _SF_ERRORS:
        data, rate = _decode_av(path)[:, None], SAMPLE_RATE
    if data.size == 0:
        raise InputError(path, "zero length: 0 samples")
    if not np.isfinite(data).all():
        raise InputError(path, "non-finite samples (NaN or inf)")
    wave = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ")
    if float(np.abs(wave).max()) <= SILENCE_PEAK:
        raise InputError(path, "silent audio: every sample is zero (or within one 16-bit step)")
    _check_length(path, len(wave) / SAMPLE_RATE)
    return np.ascontiguousarray(wave, dtype=np.float32)


def _decode_av(path: Path) -> np.ndarray:
    """Mono float32 samples at 16 kHz of the first audio stream of any FFmpeg-readable file."""
    import av  # imported here: only containers soundfile cannot read need PyAV

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise InputError(path, f"no audio stream (streams: {', '.join(kinds)})")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            chunks = []
            for frame in container.decode(container.streams.audio[0]):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(path, f"unreadable audio: {e}") from e
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
