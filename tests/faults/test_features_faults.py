"""Faults met by the features stage: bad audio is skipped and named; too many skips publish
nothing (features.npz and meta.json of the last good run stay as they were)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agcc.io.features import load_features
from tests.faults.conftest import (
    CORPUS,
    UTTS,
    Corpus,
    assert_skipped,
    latest_run,
    short_wav,
    snapshot,
    truncate_wav,
)

RUN = f"features:{CORPUS}"


def _silent(path: Path) -> None:
    """All-zero samples, same length."""
    wave, rate = sf.read(path, dtype="float32")
    sf.write(path, np.zeros_like(wave), rate, subtype="PCM_16")


def _garbage(path: Path) -> None:
    """Bytes that are no audio container at all."""
    path.write_bytes(b"RIFF\x00\x00not audio at all" * 10)


FAULTS = {
    "wav_0.05s": (short_wav, "too_short_audio", "too short: 50.0 ms < 200 ms"),
    "wav_half_downloaded": (truncate_wav, "truncated_audio", "truncated file"),
    "wav_silent": (_silent, "silent_audio", "silent audio"),
    "wav_corrupt": (_garbage, "unreadable_audio", "unreadable audio"),
}


@pytest.fixture
def encoded(corpus: Corpus) -> Corpus:
    """The corpus after one clean features run into ``base``."""
    assert corpus.features("base") == 0
    return corpus


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_bad_audio_is_skipped_and_named(
    encoded: Corpus, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    fault, kind, reason = FAULTS[case]
    path = encoded.file("u1", "wav")
    fault(path)
    assert encoded.features() == 0
    skips = assert_skipped(encoded.root / "feat", RUN, "u1", kind, path, caplog)
    assert reason in skips.iloc[0]["reason"]
    before, _ = load_features(encoded.root / "base")
    after, _ = load_features(encoded.root / "feat")
    assert set(after) == set(UTTS) - {"u1"}
    assert all(np.array_equal(after[u], before[u]) for u in after)


def test_too_many_skips_publish_no_features(
    encoded: Corpus, caplog: pytest.LogCaptureFixture
) -> None:
    for utt in ("u0", "u1", "u2"):
        short_wav(encoded.file(utt, "wav"))
    before = snapshot(encoded.root / "base")
    assert encoded.features("base") == 2
    after = snapshot(encoded.root / "base")
    assert {k: v for k, v in after.items() if k != "skips.csv"} == {
        k: v for k, v in before.items() if k != "skips.csv"
    }
    assert "dropped 3 of 4 inputs" in caplog.text and "3x too_short_audio (e.g. " in caplog.text
    assert latest_run(RUN).info.status == "FAILED"
    assert not list(encoded.root.glob(".base.staging-*"))


def test_failed_first_run_leaves_no_finished_looking_outputs(corpus: Corpus) -> None:
    for utt in ("u0", "u1", "u2"):
        short_wav(corpus.file(utt, "wav"))
    assert corpus.features("fresh") == 2
    assert sorted(p.name for p in (corpus.root / "fresh").iterdir()) == ["skips.csv"]
