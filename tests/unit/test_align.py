"""TextGrid reading (real MFA fixtures and written files) and the vowel mapping."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from praatio import textgrid

from agcc.io.textgrid import read_textgrid
from agcc.phones import Alignment, Interval, is_known_phone, vowel_class, vowel_intervals
from agcc.skips import InputError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def fixture(name: str) -> Path:
    """A TextGrid from ../shared/fixtures/textgrid, or skip when ../shared is absent."""
    path = SHARED / "fixtures" / "textgrid" / name
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared (real fixtures) lives beside the checkout")
    return path


def write_tg(path: Path, tiers: dict[str, list[tuple[float, float, str]]], fmt: str) -> Path:
    """Write interval tiers (name -> entries) as a TextGrid in praatio's ``fmt``."""
    tg = textgrid.Textgrid()
    end = max(e[1] for entries in tiers.values() for e in entries)
    for name, entries in tiers.items():
        tg.addTier(textgrid.IntervalTier(name, entries, 0.0, end))
    tg.save(str(path), format=fmt, includeBlankSpaces=True)
    return path


def vowel_counts(al: Alignment, stressed_ah_as_ah: bool = True) -> dict[str, int]:
    """Vowel -> number of tokens."""
    return dict(Counter(t.vowel for t in vowel_intervals(al, stressed_ah_as_ah=stressed_ah_as_ah)))


# Counted by hand (grep of the phones tier): AA1 x6; AE0 1, AE1 4, AE2 1; AH0 32, AH1 5;
# EH1 x10; IY0 10, IY1 5; UW0 1, UW1 2. 316 phone intervals of which 13 are empty.
LONG_COUNTS = {"AA": 6, "AE": 6, "AH": 37, "EH": 10, "IY": 15, "UW": 3}


def test_long_arpabet_with_stress() -> None:
    al = read_textgrid(fixture("mfa3_english_us_arpa_long.TextGrid"))
    assert al.speaker is None
    assert len(al.phones) == 316 - 13 and al.n_silence == 13 and al.n_spn == 0
    assert len(al.words) == 81 - 13 and al.words[0] == Interval(0.53, 1.12, "wanted")
    assert al.unknown == {}
    assert vowel_counts(al) == LONG_COUNTS
    assert vowel_counts(al, stressed_ah_as_ah=False) == LONG_COUNTS | {"AH": 32}


def test_short_file_tokens_and_words() -> None:
    al = read_textgrid(fixture("mfa3_english_us_arpa_short.TextGrid"))
    assert [p.label for p in al.phones][:3] == ["AY1", "S", "EH1"] and al.n_silence == 3
    tokens = vowel_intervals(al)
    assert [(t.vowel, t.phone, t.word) for t in tokens] == [
        ("EH", "EH1", "said"),
        ("AA", "AA1", "not"),
    ]
    assert (tokens[0].start, tokens[0].end) == (0.71, 0.79)
    assert (tokens[1].start, tokens[1].end) == (1.55, 1.61)


def test_no_stress_digits() -> None:
    al = read_textgrid(fixture("polyglotdb_mfa_test.TextGrid"))
    tokens = vowel_intervals(al)
    assert [(t.phone, t.word) for t in tokens] == [
        ("AE", "ASPIRIN"),
        ("AE", "PLANET"),
        ("EH", "PLANET"),
        ("AE", "JURASSIC"),
    ]
    # AH without a digit has unknown stress: the switch cannot drop it, and there is none here
    assert vowel_counts(al, stressed_ah_as_ah=False) == {"AE": 3, "EH": 1}
    assert [t.phone for t in vowel_intervals(al, vowels=("EH",))] == ["EH"]


def test_several_speakers_need_a_choice() -> None:
    path = fixture("polyglotdb_mfa_two_speakers.TextGrid")
    with pytest.raises(InputError, match="several speakers.*Speaker1.*Speaker2") as err:
        read_textgrid(path)
    assert err.value.path == str(path)
    al = read_textgrid(path, speaker="Speaker2")
    assert al.speaker == "Speaker2" and vowel_counts(al) == {"AE": 3, "EH": 1}
    assert [w.label for w in al.words] == ["ASPIRIN", "PLANET", "JURASSIC"]
    with pytest.raises(InputError, match="speaker 'Speaker3'.*Speaker1"):
        read_textgrid(path, speaker="Speaker3")


def test_single_prefixed_speaker_is_used(tmp_path: Path) -> None:
    tiers = {
        "spk7 - words": [(0.0, 0.5, "bee")],
        "spk7 - phones": [(0.0, 0.2, "B"), (0.2, 0.5, "IY1"), (0.5, 0.6, "")],
    }
    path = write_tg(tmp_path / "a.TextGrid", tiers, "long_textgrid")
    al = read_textgrid(path)
    assert al.speaker == "spk7" and al.n_silence == 1
    assert vowel_intervals(al)[0].word == "bee"
    # a requested speaker on a single-speaker file uses its plain tiers
    plain = write_tg(tmp_path / "b.TextGrid", {"phones": [(0.0, 0.3, "AA1")]}, "long_textgrid")
    assert read_textgrid(plain, speaker="anyone").phones == [Interval(0.0, 0.3, "AA1")]


def test_short_praat_format_reads_like_long(tmp_path: Path) -> None:
    src = fixture("mfa3_english_us_arpa_short.TextGrid")
    tg = textgrid.openTextgrid(str(src), includeEmptyIntervals=True)
    short = tmp_path / "short.TextGrid"
    tg.save(str(short), format="short_textgrid", includeBlankSpaces=True)
    assert "item [" not in short.read_text()  # really the short format
    a, b = read_textgrid(src), read_textgrid(short)
    assert (a.phones, a.words, a.n_silence) == (b.phones, b.words, b.n_silence)


def test_no_phones_tier_names_file_and_tiers(tmp_path: Path) -> None:
    tiers = {"words": [(0, 1, "hi")], "notes": [(0, 1, "x")]}
    path = write_tg(tmp_path / "w.TextGrid", tiers, "long_textgrid")
    with pytest.raises(InputError, match=r"no phones tier.*'words', 'notes'") as err:
        read_textgrid(path)
    assert str(path) in str(err.value)


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing file"):
        read_textgrid(tmp_path / "nope.TextGrid")
    bad = tmp_path / "bad.TextGrid"
    bad.write_text("this is not a TextGrid\n")
    with pytest.raises(InputError, match="unreadable TextGrid") as err:
        read_textgrid(bad)
    assert err.value.path == str(bad)


def test_ipa_textgrid_counts_silence_noise_and_unknown(tmp_path: Path) -> None:
    phones = [
        (0.0, 0.1, ""),
        (0.1, 0.2, "h"),
        (0.2, 0.3, "ʌ"),
        (0.3, 0.4, "sil"),
        (0.4, 0.5, "spn"),
        (0.5, 0.6, "ɹ"),
        (0.6, 0.7, "iː"),
        (0.7, 0.8, "aj"),
        (0.8, 0.9, "??"),
        (0.9, 1.0, "sp"),
        (1.0, 1.1, "ɑː"),
        (1.1, 1.2, "??"),
        (1.2, 1.3, "AX"),
    ]
    words = [(0.1, 0.3, "hug"), (0.5, 0.8, "rye"), (1.0, 1.3, "ah")]
    path = write_tg(tmp_path / "ipa.TextGrid", {"words": words, "phones": phones}, "long_textgrid")
    al = read_textgrid(path)
    assert al.n_silence == 3 and al.n_spn == 1
    assert al.unknown == {"??": 2, "AX": 1}
    assert len(al.phones) == 13 - 4  # unknown phones stay in the list
    tokens = vowel_intervals(al)
    assert [(t.vowel, t.phone, t.word) for t in tokens] == [
        ("AH", "ʌ", "hug"),
        ("IY", "iː", "rye"),
        ("AA", "ɑː", "ah"),
    ]
    assert [t.phone for t in vowel_intervals(al, stressed_ah_as_ah=False)] == ["iː", "ɑː"]


def test_word_lookup_uses_the_midpoint() -> None:
    al = Alignment(
        "x",
        None,
        words=[Interval(0.0, 1.0, "one"), Interval(1.5, 2.0, "two")],
        phones=[Interval(0.4, 1.2, "AA1"), Interval(0.9, 1.3, "IY1"), Interval(1.4, 1.8, "UW1")],
    )
    # IY1 starts inside "one" but its midpoint (1.1) is in the pause; UW1's (1.6) is in "two"
    assert [t.word for t in vowel_intervals(al)] == ["one", "", "two"]


@pytest.mark.parametrize(
    ("label", "default", "unstressed_only"),
    [
        # ARPAbet, with and without stress digits
        ("AA1", "AA", "AA"),
        ("AA", "AA", "AA"),
        ("AH0", "AH", "AH"),
        ("AH1", "AH", None),
        ("AH2", "AH", None),
        ("AH", "AH", "AH"),
        ("EH2", "EH", "EH"),
        ("IY", "IY", "IY"),
        ("AE1", "AE", "AE"),
        ("UW0", "UW", "UW"),
        ("AO1", None, None),
        ("IH0", None, None),
        ("ER1", None, None),
        ("AY1", None, None),
        ("S", None, None),
        ("S1", None, None),
        # IPA as english_mfa writes it: length and stress marks stripped
        ("ɑ", "AA", "AA"),
        ("ɑː", "AA", "AA"),
        ("a", "AA", "AA"),
        ("aː", "AA", "AA"),
        ("ə", "AH", "AH"),
        ("ˈə", "AH", "AH"),
        ("ʌ", "AH", None),
        ("ˌʌ", "AH", None),
        ("ɐ", "AH", None),
        ("ɛ", "EH", "EH"),
        ("ɛː", "EH", "EH"),
        ("i", "IY", "IY"),
        ("iː", "IY", "IY"),
        ("ˈiː", "IY", "IY"),
        ("æ", "AE", "AE"),
        ("u", "UW", "UW"),
        ("uː", "UW", "UW"),
        ("ʉː", "UW", "UW"),
        # not among the six: other vowels, diphthongs, r-coloured vowels, consonants
        ("ɪ", None, None),
        ("ʊ", None, None),
        ("ɔ", None, None),
        ("ɒ", None, None),
        ("e", None, None),
        ("o", None, None),
        ("ɚ", None, None),
        ("ɝ", None, None),
        ("ɜː", None, None),
        ("aj", None, None),
        ("aw", None, None),
        ("ej", None, None),
        ("ow", None, None),
        ("ɔj", None, None),
        ("əw", None, None),
        ("tʃ", None, None),
        ("dʒ", None, None),
        ("ɹ", None, None),
        ("kʰ", None, None),
        ("m̩", None, None),
        ("", None, None),
        ("spn", None, None),
        ("xyz", None, None),
    ],
)
def test_vowel_class_table(label: str, default: str | None, unstressed_only: str | None) -> None:
    assert vowel_class(label) == default
    assert vowel_class(label, stressed_ah_as_ah=False) == unstressed_only


@pytest.mark.parametrize(
    ("label", "known"),
    [
        ("AA1", True),
        ("ZH", True),
        ("NG", True),
        ("S1", False),
        ("AX", False),
        ("aa1", False),
        ("ɑː", True),
        ("aj", True),
        ("tʃ", True),
        ("kʰ", True),
        ("tʲ", True),
        ("m̩", True),
        ("ɫ̩", True),
        ("d̪", True),
        ("ɾ", True),
        ("ʔ", True),
        ("<unk>", False),
        ("xyz", False),
    ],
)
def test_known_phone_symbols(label: str, known: bool) -> None:
    assert is_known_phone(label) is known


def test_unknown_vowel_names_are_rejected() -> None:
    al = Alignment("x", None, words=[], phones=[Interval(0, 1, "AA1")])
    with pytest.raises(ValueError, match="OW"):
        vowel_intervals(al, vowels=("AA", "OW"))
