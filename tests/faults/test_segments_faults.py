"""Faults met by the segments stage: each is skipped with its file and reason, or fails loudly.

Each test runs the stage on the clean tiny corpus, injects one fault, runs it again and checks
the exit status, the message, the count in skips.csv and MLflow, and that nothing else changed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agcc.io.manifest import read_manifest, write_manifest
from agcc.io.mouth import load_mouth
from agcc.io.segments import load_segments
from agcc.io.textgrid import write_textgrid
from tests.faults.conftest import (
    CORPUS,
    PHONES,
    SECONDS,
    UTTS,
    Corpus,
    assert_skipped,
    latest_run,
    read_skips,
    save_tracks,
    short_wav,
    snapshot,
    truncate_wav,
)

RUN = f"segments:{CORPUS}"


def _by_utt(out: Path) -> dict[str, list[tuple]]:
    """utt_id -> [(vowel, start, end, frames bytes)] of a segments folder."""
    table, frames = load_segments(out)
    found: dict[str, list[tuple]] = {}
    for (_, row), f in zip(table.iterrows(), frames, strict=True):
        key = (row["vowel"], row["start"], row["end"], f.tobytes())
        found.setdefault(row["utt_id"], []).append(key)
    return found


def _others_unchanged(corpus: Corpus, faulty: str) -> None:
    """Segments of every utterance but ``faulty`` equal those of the clean run."""
    before, after = _by_utt(corpus.root / "base"), _by_utt(corpus.root / "seg")
    assert set(after) == set(UTTS) - {faulty}
    assert all(after[u] == before[u] for u in after)


@pytest.fixture
def clean(corpus: Corpus) -> Corpus:
    """The corpus after one clean segments run into ``base``."""
    assert corpus.segments("base") == 0
    assert read_skips(corpus.root / "base").empty
    return corpus


def _textgrid_past_audio(path: Path) -> None:
    """A TextGrid whose intervals run to 3.5 s while the audio lasts 2 s."""
    late = [(s + 1.5, e + 1.5, p) for s, e, p in PHONES]
    write_textgrid(path, [(late[0][0], late[-1][1], "word")], late, SECONDS + 1.5)


FILE_FAULTS = {
    "wav_0.05s": ("wav", short_wav, "too_short_audio", "too short: 50.0 ms"),
    "wav_half_downloaded": ("wav", truncate_wav, "truncated_audio", "truncated file"),
    "textgrid_past_audio_end": (
        "TextGrid",
        _textgrid_past_audio,
        "duration_mismatch",
        "durations disagree by 1.500 s",
    ),
}


@pytest.mark.parametrize("case", sorted(FILE_FAULTS))
def test_bad_file_is_skipped_and_named(
    clean: Corpus, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    kind_of_file, fault, kind, reason = FILE_FAULTS[case]
    path = clean.file("u1", kind_of_file)
    fault(path)
    assert clean.segments() == 0
    skips = assert_skipped(clean.root / "seg", RUN, "u1", kind, path, caplog)
    assert reason in skips.iloc[0]["reason"]
    _others_unchanged(clean, "u1")


def test_landmark_track_shorter_than_audio_is_skipped(
    clean: Corpus, caplog: pytest.LogCaptureFixture
) -> None:
    tracks = load_mouth(clean.mouth)
    time, mouth = tracks["u2"]
    tracks["u2"] = (time[:20], mouth[:20])  # video cut after 0.67 s of 2 s
    cut = clean.root / "cut_mouth.npz"
    save_tracks(cut, tracks)
    assert clean.segments(mouth=cut) == 0
    path = clean.file("u2", "csv")
    skips = assert_skipped(clean.root / "seg", RUN, "u2", "duration_mismatch", path, caplog)
    assert "landmark track 0.667 s" in skips.iloc[0]["reason"]
    _others_unchanged(clean, "u2")


def test_mismatch_within_tolerance_is_kept(clean: Corpus) -> None:
    path = clean.file("u3", "wav")
    wave, rate = sf.read(path, dtype="float32")
    sf.write(path, wave[: int(1.7 * rate)], rate, subtype="PCM_16")  # 0.3 s < 0.5 s tolerance
    assert clean.segments() == 0
    assert read_skips(clean.root / "seg").empty
    assert _by_utt(clean.root / "seg") == _by_utt(clean.root / "base")


@pytest.mark.parametrize("label", ["<unk>", "[noise]", "+BREATH+", "AH?", "a,b"])
def test_odd_phone_label_is_counted_under_a_safe_metric_name(
    clean: Corpus, label: str, caplog: pytest.LogCaptureFixture
) -> None:
    tg = clean.file("u0", "TextGrid")
    phones = [(s, e, label if p == "T" else p) for s, e, p in PHONES]
    write_textgrid(tg, [(phones[0][0], phones[-1][1], "word")], phones, SECONDS)
    assert clean.segments() == 0
    assert read_skips(clean.root / "seg").empty  # vowels of u0 kept, as documented
    assert _by_utt(clean.root / "seg") == _by_utt(clean.root / "base")
    metrics = latest_run(RUN).data.metrics
    (key,) = [k for k in metrics if k.startswith("unknown_phone.")]
    assert key.removeprefix("unknown_phone.").replace("_", "").isalnum()
    assert metrics[key] == 1 and metrics["unknown_phone_utts"] == 1
    assert any(str(tg) in r.getMessage() and label in r.getMessage() for r in caplog.records)


def _no_phones_tier(corpus: Corpus) -> Path:
    path = corpus.file("u1", "TextGrid")
    text = path.read_text().replace('name = "phones"', 'name = "segments"')
    path.write_text(text)
    return path


def _no_target_vowel(corpus: Corpus) -> Path:
    path = corpus.file("u1", "TextGrid")
    phones = [(s, e, "IH1" if p[-1].isdigit() else p) for s, e, p in PHONES]
    write_textgrid(path, [(0.2, 1.2, "word")], phones, SECONDS)
    return path


def _missing_textgrid(corpus: Corpus) -> Path:
    path = corpus.file("u1", "TextGrid")
    path.unlink()
    return path


def _unreadable_textgrid(corpus: Corpus) -> Path:
    path = corpus.file("u1", "TextGrid")
    path.write_bytes(b"\x00\xff garbage")
    return path


SPEC_FAULTS = {
    "textgrid_without_phones_tier": (_no_phones_tier, "no_phones_tier"),
    "no_target_vowel": (_no_target_vowel, "no_target_vowel"),
    "missing_textgrid": (_missing_textgrid, "missing_file"),
    "unreadable_textgrid": (_unreadable_textgrid, "unreadable_textgrid"),
}


@pytest.mark.parametrize("case", sorted(SPEC_FAULTS))
def test_bad_textgrid_is_skipped_and_named(
    clean: Corpus, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    fault, kind = SPEC_FAULTS[case]
    path = fault(clean)
    assert clean.segments() == 0
    assert_skipped(clean.root / "seg", RUN, "u1", kind, path, caplog)
    _others_unchanged(clean, "u1")


def test_utterance_without_mouth_track_is_skipped(
    clean: Corpus, caplog: pytest.LogCaptureFixture
) -> None:
    tracks = load_mouth(clean.mouth)
    del tracks["u3"]
    part = clean.root / "part_mouth.npz"
    save_tracks(part, tracks)
    assert clean.segments(mouth=part) == 0
    assert_skipped(clean.root / "seg", RUN, "u3", "no_mouth_track", clean.file("u3", "csv"), caplog)
    _others_unchanged(clean, "u3")


def test_infinite_mouth_value_fails_naming_file_and_utterance(
    clean: Corpus, caplog: pytest.LogCaptureFixture
) -> None:
    tracks = load_mouth(clean.mouth)
    tracks["u2"][1][5, 3] = np.inf
    bad = clean.root / "inf_mouth.npz"
    save_tracks(bad, tracks)
    before = snapshot(clean.root / "base")
    assert clean.segments("base", mouth=bad) == 2
    assert f"{bad}: utterance 'u2' has infinite mouth values" in caplog.text
    assert snapshot(clean.root / "base") == before
    assert latest_run(RUN).info.status == "FAILED"


def test_too_many_skips_fail_and_publish_nothing(
    clean: Corpus, caplog: pytest.LogCaptureFixture
) -> None:
    for utt in ("u0", "u1"):
        short_wav(clean.file(utt, "wav"))
    _missing_textgrid(clean)  # u1 again: its wav is checked after its TextGrid
    clean.file("u2", "TextGrid").unlink()
    before = snapshot(clean.root / "base")
    assert clean.segments("base") == 2
    after = snapshot(clean.root / "base")
    assert {k: v for k, v in after.items() if k != "skips.csv"} == {
        k: v for k, v in before.items() if k != "skips.csv"
    }
    skips = read_skips(clean.root / "base")
    assert sorted(skips["kind"]) == ["missing_file", "missing_file", "too_short_audio"]
    assert "by kind: 2x missing_file (e.g. " in caplog.text
    assert "1x too_short_audio (e.g. " in caplog.text
    run = latest_run(RUN)
    assert run.info.status == "FAILED"
    assert not list(clean.root.glob(".base.staging-*"))


def test_formula_text_in_skips_csv_is_neutralised(clean: Corpus) -> None:

    frame = read_manifest(clean.manifest)
    frame.loc[frame["utt_id"] == "u1", "textgrid"] = "=1+1"
    frame.loc[frame["utt_id"] == "u2", "utt_id"] = "=cmd|' /C calc'!A0"
    write_manifest(frame, clean.manifest)
    tracks = load_mouth(clean.mouth)
    tracks["=cmd|' /C calc'!A0"] = tracks.pop("u2")
    save_tracks(clean.mouth, tracks)
    clean.file("u2", "TextGrid").unlink()
    assert clean.segments() == 0
    with (clean.root / "seg" / "skips.csv").open(newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert "'=1+1" in cells and "'=cmd|' /C calc'!A0" in cells
    assert "'=1+1: missing file" in cells  # the detail column starts with the path too
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
