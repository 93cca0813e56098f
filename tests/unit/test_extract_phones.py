"""The built-in pocketsphinx aligner against espeak-ng speech with known phoneme timings."""

from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agcc.corpora.crema_d import SENTENCES
from agcc.errors import ConfigError, MissingInputError
from agcc.extract import espeak
from agcc.extract.phones import (
    Aligner,
    align_manifest,
    normalise_words,
    pronunciations,
    read_dictionary,
    report_missing,
    split_compounds,
    with_stress,
    write_aligned,
)
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


def test_numbers_punctuation_and_hyphens_are_normalised_as_mfa_users_expect() -> None:
    assert normalise_words("It's eleven o'clock.") == ["it's", "eleven", "o'clock"]
    assert normalise_words("Born in 1971, on the 3rd; 2.5% (of 10,000)!") == [
        "born", "in", "nineteen", "seventy-one", "on", "the", "third", "two", "point", "five",
        "percent", "of", "ten", "thousand",
    ]  # fmt: skip
    assert normalise_words("'Quoted' well-known -- x-ray &c") == [
        "quoted",
        "well-known",
        "x-ray",
        "and",
        "c",
    ]
    known = {"x-ray"}.__contains__
    words = ["nineteen", "seventy-one", "well-known", "x-ray"]
    assert split_compounds(words, known) == ["nineteen", "seventy", "one", "well", "known", "x-ray"]


def test_user_dictionary_extends_the_default_one(tmp_path: Path) -> None:
    dic = tmp_path / "extra.dict"
    dic.write_text(
        ";;; comment\nzorblaxt Z AO1 R B L AE2 K S T\nzorblaxt(2) Z AO R\nquux 0.9 K W AH1 K S\n"
    )
    assert read_dictionary(dic) == {"zorblaxt": "Z AO R B L AE K S T", "quux": "K W AH K S"}
    aligner = Aligner(AlignParams(dictionary=str(dic)))
    assert aligner.has_word("zorblaxt") and aligner.has_word("quux")
    assert aligner.has_word("meeting")  # the default dictionary is still there
    dic.write_text("blorf QQ X\n")
    with pytest.raises(ConfigError, match=r"extra\.dict: align\.dictionary entry 'blorf'"):
        Aligner(AlignParams(dictionary=str(dic)))
    with pytest.raises(MissingInputError, match="nope.dict: align.dictionary does not exist"):
        Aligner(AlignParams(dictionary=str(tmp_path / "nope.dict")))


def test_words_in_no_dictionary_get_g2p_or_are_named_with_the_key_to_extend(
    aligner: Aligner, caplog: pytest.LogCaptureFixture
) -> None:
    extra, missing = pronunciations({"quilpex", "meeting"}, aligner, use_g2p=False)
    assert (extra, missing) == ({}, {"quilpex"})
    with caplog.at_level(logging.WARNING):
        extra, missing = pronunciations({"quilpex", "meeting"}, aligner, use_g2p=True)
        report_missing({"quilpex", "zorb"}, AlignParams(), "c")
    assert missing == set() and extra == {"quilpex": "K W IH L P K AH S"}
    assert "guessed by the g2p model for 1 words" in caplog.text
    assert "2 words are in no dictionary" in caplog.text and "quilpex, zorb" in caplog.text
    assert "named by align.dictionary: it extends the default dictionary" in caplog.text


@pytest.mark.slow
def test_align_manifest_spells_numbers_uses_g2p_and_skips_bad_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    need_espeak()
    text = SENTENCES["IOM"]  # I'm on my way to the meeting
    audio, _ = speech(f"{text} in 1971")
    wav = write_wav(tmp_path / "a.wav", audio)
    oov_audio, _ = speech(f"{text} quilpex")
    oov = write_wav(tmp_path / "oov.wav", oov_audio)
    mute = cut_video(fixture_video(), tmp_path / "mute.mp4", 0.0, 0.5)  # no audio stream
    frame = pd.DataFrame(
        {
            "utt_id": ["ok", "oov", "none", "mute"],
            "audio": [str(wav), str(oov), str(wav), str(mute)],
            "transcript": [f"{text}, in 1971.", f"{text} quilpex", "", text],
        }
    )
    ap, skips = AlignParams(workers=1), SkipReport("align@t")
    with caplog.at_level(logging.WARNING):
        aligned, counts = align_manifest(frame, tmp_path / "tg", ap, skips)
    assert list(aligned["utt_id"]) == ["ok", "oov"] and counts["pocketsphinx.unknown_words"] == 0
    assert "quilpex [K W IH L P K AH S]" in caplog.text  # the g2p guess is named
    reasons = {s.item: s.reason for s in skips.skips}
    assert reasons["none"].startswith("no transcript")
    assert reasons["mute"] == "no audio stream (streams: video)"
    tg = read_textgrid(aligned["textgrid"].iloc[0])
    labels = [w.label for w in tg.words if w.label]
    assert labels[-4:] == ["in", "nineteen", "seventy", "one"]  # 1971 spelt out, hyphen split
    one = [p.label for p in tg.phones if tg.words[-1].start <= p.start < tg.words[-1].end]
    assert one == ["W", "AH1", "N"]
    tg = read_textgrid(aligned["textgrid"].iloc[1])
    guessed = [p.label for p in tg.phones if tg.words[-1].start <= p.start < tg.words[-1].end]
    assert tg.words[-1].label == "quilpex" and guessed[2] == "IH1"  # stress from the g2p model


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
