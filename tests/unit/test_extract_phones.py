"""The built-in pocketsphinx aligner against espeak-ng speech with known phoneme timings."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agcc.corpora.crema_d import SENTENCES
from agcc.extract import espeak
from agcc.extract.phones import Aligner, align_manifest, with_stress, write_aligned
from agcc.io.manifest import MANIFEST_COLUMNS
from agcc.io.textgrid import read_textgrid
from agcc.params import AlignParams, BaseParams
from agcc.phones import vowel_intervals, words_of
from agcc.skips import SkipReport
from agcc.stages import align as align_stage

from ..media import cut_video, fixture_video, need_espeak, speech, write_wav

PAD = 0.3  # seconds of near-silence before and after each synthesised sentence


@pytest.fixture(scope="module")
def aligner() -> Aligner:
    """One decoder with the default (wide) beams for the module."""
    return Aligner(AlignParams())


def test_words_of_transcripts() -> None:
    assert words_of("It's eleven o'clock.") == ["it's", "eleven", "o'clock"]
    assert words_of("  'Quoted' words, and-hyphens; 42 ") == [
        "quoted",
        "words",
        "and",
        "hyphens",
        "42",
    ]
    assert words_of("...") == []


def test_stress_digits_come_from_the_matching_cmudict_pronunciation() -> None:
    assert with_stress("meeting", ["M", "IY", "T", "IH", "NG"]) == ["M", "IY1", "T", "IH0", "NG"]
    assert with_stress("the", ["DH", "IY"]) == ["DH", "IY0"]
    assert with_stress("the", ["DH", "AA"]) == ["DH", "AA"]  # no such variant: no digits


def test_espeak_speech_has_increasing_phoneme_times_within_the_audio() -> None:
    need_espeak()
    sp = espeak.synthesize("Don't forget a jacket")
    starts = [p.start for p in sp.phonemes]
    assert sp.sample_rate == 16000 and 1.0 < sp.duration < 3.0
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] < sp.duration
    arpa = [p.arpabet for p in sp.phonemes if p.arpabet]
    assert arpa[:4] == ["D", "OW", "N", "T"]
    # espeak-ng emits 4 word events here in a fresh process and sometimes 5 after other voices
    # were used in the same process (an end-of-sentence event at the end of the audio)
    words = list(sp.word_starts)
    assert len(words) >= 4 and words == sorted(words) and words[-1] <= sp.duration + 1e-3


def _boundary_errors(aligner: Aligner, text: str) -> list[float]:
    """Aligned minus espeak phone start times (s) of the phones both sequences share."""
    audio, sp = speech(text, pad=PAD)
    aligned = aligner.align(audio, words_of(text))
    ref = [(p.arpabet, p.start + PAD) for p in sp.phonemes if p.arpabet]
    hyp = [(re.sub(r"\d", "", iv.label), iv.start) for iv in aligned.phones if iv.label]
    match = difflib.SequenceMatcher(a=[r[0] for r in ref], b=[h[0] for h in hyp], autojunk=False)
    blocks = match.get_matching_blocks()
    assert sum(b.size for b in blocks) >= 0.8 * len(ref), (ref, hyp)
    return [hyp[b.b + k][1] - ref[b.a + k][1] for b in blocks for k in range(b.size)]


def test_aligner_recovers_espeak_phone_boundaries(aligner: Aligner) -> None:
    need_espeak()
    errors = []
    for code in ("IEO", "TIE", "IOM", "MTI", "ITH", "DFA", "TSI", "WSI"):
        errors += _boundary_errors(aligner, SENTENCES[code])
    errors = np.abs(errors)
    assert len(errors) > 100
    assert np.median(errors) < 0.030, f"median boundary error {np.median(errors) * 1000:.1f} ms"
    assert np.mean(errors < 0.100) > 0.9


def test_long_pause_between_sentences_still_aligns(aligner: Aligner) -> None:
    need_espeak()
    first, _ = speech("I think I have a doctor's appointment", pad=0.2)
    second, _ = speech("We'll stop in a couple of minutes", pad=0.2)
    pause = np.random.default_rng(2).normal(0, 1e-3, 4 * 16000).astype(np.float32)
    audio = np.concatenate([first, pause, second])
    words = words_of("I think I have a doctor's appointment we'll stop in a couple of minutes")
    aligned = aligner.align(audio, words)
    spoken = [w for w in aligned.words if w.label]
    assert [w.label for w in spoken] == words
    gap_start, gap_end = len(first) / 16000, (len(first) + len(pause)) / 16000
    assert spoken[6].end < gap_start + 0.1 and spoken[7].start > gap_end - 0.1
    assert any(w.label == "" and w.end - w.start > 3.5 for w in aligned.words)


def test_textgrid_is_mfa_layout_with_stress_digits(tmp_path: Path, aligner: Aligner) -> None:
    need_espeak()
    audio, _ = speech("The airplane is almost full")
    aligned = aligner.align(audio, words_of("The airplane is almost full"))
    path = write_aligned(aligned, tmp_path / "u.TextGrid")
    tg = read_textgrid(path)
    assert [w.label for w in tg.words] == ["the", "airplane", "is", "almost", "full"]
    assert tg.n_silence >= 2 and tg.unknown == {}
    assert any(re.fullmatch(r"[A-Z]+1", p.label) for p in tg.phones)  # primary stress
    assert tg.phones[0].start >= 0.2 and tg.phones[-1].end <= len(audio) / 16000
    vowels = vowel_intervals(tg)
    assert {("the", "AH"), ("airplane", "EH")} <= {(v.word, v.vowel) for v in vowels}
    assert not list(tmp_path.glob("*.tmp"))


def _small_dictionary(path: Path, words: list[str]) -> Path:
    """The packaged pocketsphinx dictionary's entries (all variants) of ``words`` only."""
    from pocketsphinx import get_model_path

    full = Path(get_model_path("en-us/cmudict-en-us.dict")).read_text().splitlines()
    keep = [ln for ln in full if re.sub(r"\(\d+\)$", "", ln.split()[0]) in words]
    path.write_text("\n".join(keep) + "\n")
    return path


@pytest.mark.slow
def test_align_manifest_fills_oov_from_cmudict_and_names_unknown_words(tmp_path: Path) -> None:
    need_espeak()
    text = SENTENCES["IOM"]  # I'm on my way to the meeting
    audio, _ = speech(text)
    wav = write_wav(tmp_path / "a.wav", audio)
    mute = cut_video(fixture_video(), tmp_path / "mute.mp4", 0.0, 0.5)  # no audio stream
    frame = pd.DataFrame(
        {
            "utt_id": ["ok", "oov", "none", "mute"],
            "audio": [str(wav), str(wav), str(wav), str(mute)],
            "transcript": [text, f"{text} zorblaxt", "", text],
        }
    )
    dic = _small_dictionary(tmp_path / "small.dict", ["i'm", "on", "my", "way", "to", "the"])
    ap, skips = AlignParams(workers=1, dictionary=str(dic)), SkipReport("align@t")
    aligned, counts = align_manifest(frame, tmp_path / "tg", ap, skips)
    assert list(aligned["utt_id"]) == ["ok"] and counts["pocketsphinx.cmudict_words"] == 1
    reasons = {s.item: s.reason for s in skips.skips}
    assert "'zorblaxt'" in reasons["oov"] and reasons["oov"].startswith("word not in any")
    assert reasons["none"].startswith("no transcript")
    assert reasons["mute"] == "no audio stream (streams: video)"
    tg = read_textgrid(aligned["textgrid"].iloc[0])
    meeting = [p.label for p in tg.phones if tg.words[-1].start <= p.start < tg.words[-1].end]
    assert tg.words[-1].label == "meeting" and meeting == ["M", "IY1", "T", "IH0", "NG"]


@pytest.mark.slow  # the MLflow store's first set-up takes seconds
def test_align_stage_copies_the_manifest_for_textgrid_corpora(tracked: Path) -> None:
    prepared = tracked / "prepared.csv"
    cols = list(MANIFEST_COLUMNS)
    rows = [
        [
            "u1",
            "c",
            "1001",
            "F",
            "",
            "IEO",
            "anger",
            "train",
            "a.wav",
            "",
            "a.csv",
            "a.TextGrid",
            "It's eleven o'clock",
        ]
    ]
    pd.DataFrame(rows, columns=cols).to_csv(prepared, index=False)
    out = tracked / "align"
    align_stage.run("c", prepared, "textgrid", AlignParams(), BaseParams(), out)
    assert (out / "manifest.csv").read_text() == prepared.read_text()
    assert (out / "textgrids").is_dir() and not list((out / "textgrids").iterdir())
    assert pd.read_csv(out / "skips.csv").empty
