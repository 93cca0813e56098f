"""Phone labels: ARPAbet and IPA phone sets, and the paper's six vowels (AA AH EH IY AE UW).

Phones may be ARPAbet with or without stress digits (MFA's english_us_arpa) or IPA as MFA's
english_mfa model writes it; vowel_class maps both onto the six vowels.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field

from agcc.params import VOWELS

# The 39 CMU / english_us_arpa phones; the 15 vowels may carry a stress digit 0-2.
ARPA_VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())


ARPA_CONSONANTS = frozenset("B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split())


_ARPA = re.compile(r"([A-Z]{1,2})([012]?)")


_WORD = re.compile(r"[a-z0-9']+")


# IPA: stress and length marks are stripped before lookup. The paper's vowels
# {a, ə, ɛ, i, æ, u} are ARPAbet AA AH EH IY AE UW. english_mfa also writes the GOOSE vowel
# as ʉ(ː) after coronals and /j/, and the STRUT vowel as ɐ as well as ʌ, so ʉ counts as UW and
# ɐ as stressed AH, like ʌ; otherwise the same words would give UW/AH in an ARPAbet corpus and
# nothing in an IPA one. ɒ ɔ ɪ ʊ e o ɚ ɝ ɜ and the diphthongs (aj aw ej ow ɔj əw) are not among
# the six and map to None.
IPA_VOWELS = {
    "ɑ": "AA",
    "a": "AA",
    "ə": "AH",
    "ɛ": "EH",
    "i": "IY",
    "æ": "AE",
    "u": "UW",
    "ʉ": "UW",
}


IPA_STRESSED_AH = frozenset({"ʌ", "ɐ"})


_IPA_MARKS = "ˈˌːˑ"  # primary/secondary stress, long, half-long


_IPA_MODIFIERS = "ʰʲʷ"  # aspiration, palatalisation, labialisation (english_mfa writes these)


_IPA_LETTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyz"
    "ɑɐɒæɓʙβɔɕçɗɖðʤəɘɚɛɜɝɞɟʄɡɠɢʛɦɧħɥʜɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶʘɹɺɾɻʀʁɽʂʃʈʧʉʊʋⱱʌɣɤʍχʎʏʑʐʒʔʡʕʢ"
)


# Digraphs english_mfa (and common English IPA) use as single phones.
_IPA_DIGRAPHS = frozenset(
    "aj aw ej ow ɔj əw oj ɑj aɪ aʊ eɪ oʊ ɔɪ əʊ ɪə ʊə eə ɛə tʃ dʒ ts dz tɕ dʑ kp ɡb".split()
)


@dataclass(frozen=True)
class VowelToken:
    """One vowel phone: its interval, canonical ARPAbet vowel, original label and word."""

    start: float
    end: float
    vowel: str
    phone: str
    word: str


def _strip_ipa_marks(label: str) -> str:
    """NFC label without stress and length marks."""
    label = unicodedata.normalize("NFC", label.strip())
    return "".join(c for c in label if c not in _IPA_MARKS)


def is_known_phone(label: str) -> bool:
    """True for an ARPAbet phone (stress digit only on vowels) or an IPA phone.

    IPA phones: one IPA letter or a listed digraph (diphthong, affricate), after removing
    stress/length marks, the modifiers ʰ ʲ ʷ and combining diacritics (syllabic, dental, ...).
    """
    m = _ARPA.fullmatch(label.strip())
    if m:
        base, stress = m.groups()
        return base in ARPA_VOWELS or (base in ARPA_CONSONANTS and not stress)
    ipa = unicodedata.normalize("NFD", _strip_ipa_marks(label))
    core = "".join(c for c in ipa if c not in _IPA_MODIFIERS and not unicodedata.combining(c))
    core = unicodedata.normalize("NFC", core)
    return (len(core) == 1 and core in _IPA_LETTERS) or core in _IPA_DIGRAPHS


def vowel_class(label: str, stressed_ah_as_ah: bool = True) -> str | None:
    """The paper's vowel (AA AH EH IY AE UW) of an ARPAbet or IPA phone label, else None.

    ARPAbet with or without a stress digit: AA AH EH IY AE UW map to themselves; AH1/AH2 map
    to AH only when ``stressed_ah_as_ah`` (AH without a digit always does: its stress is
    unknown). IPA after removing stress (ˈ ˌ) and length (ː ˑ) marks: ɑ a -> AA, ə -> AH,
    ɛ -> EH, i -> IY, æ -> AE, u ʉ -> UW, and ʌ ɐ (stressed AH) -> AH only when
    ``stressed_ah_as_ah``. Any other phone, known or not, -> None.
    """
    m = _ARPA.fullmatch(label.strip())
    if m:
        base, stress = m.groups()
        stressed_ah = base == "AH" and stress in ("1", "2")
        if base not in VOWELS or (stressed_ah and not stressed_ah_as_ah):
            return None
        return base
    ipa = _strip_ipa_marks(label)
    if ipa in IPA_STRESSED_AH:
        return "AH" if stressed_ah_as_ah else None
    return IPA_VOWELS.get(ipa)


def vowel_intervals(
    alignment: Alignment, vowels: tuple[str, ...] = VOWELS, stressed_ah_as_ah: bool = True
) -> list[VowelToken]:
    """The alignment's phones that are among ``vowels``, each with the word at its midpoint.

    ``word`` is the label of the word interval containing (start + end) / 2, "" if none.
    """
    bad = [v for v in vowels if v not in VOWELS]
    if bad:
        raise ValueError(f"vowels must be among {VOWELS}, got {list(vowels)}")
    starts = [w.start for w in alignment.words]
    tokens = []
    for p in alignment.phones:
        vowel = vowel_class(p.label, stressed_ah_as_ah)
        if vowel is None or vowel not in vowels:
            continue
        mid = 0.5 * (p.start + p.end)
        i = bisect.bisect_right(starts, mid) - 1
        word = alignment.words[i].label if i >= 0 and mid < alignment.words[i].end else ""
        tokens.append(VowelToken(p.start, p.end, vowel, p.label, word))
    return tokens


@dataclass(frozen=True)
class Interval:
    """A labelled time interval in seconds, [start, end)."""

    start: float
    end: float
    label: str


@dataclass
class Alignment:
    """Word and phone intervals of one TextGrid, silence and spoken noise removed.

    ``n_silence`` counts dropped phone intervals labelled empty, ``sil`` or ``sp``; ``n_spn``
    those labelled ``spn`` (unknown speech); ``unknown`` counts phone labels kept in
    ``phones`` that are neither ARPAbet nor a known IPA phone; ``end`` is the TextGrid's end
    time in seconds (its xmax, or the last interval's end when later).
    """

    path: str
    speaker: str | None
    words: list[Interval]
    phones: list[Interval]
    n_silence: int = 0
    n_spn: int = 0
    unknown: dict[str, int] = field(default_factory=dict)
    end: float = 0.0


def words_of(transcript: str) -> list[str]:
    """Lower-case words of a transcript: runs of letters, digits and inner apostrophes.

    ``"It's eleven o'clock."`` -> ``["it's", "eleven", "o'clock"]``; other characters split words.
    """
    return [w.strip("'") for w in _WORD.findall(transcript.lower()) if w.strip("'")]
