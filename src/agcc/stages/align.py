"""Phone alignments: Montreal Forced Aligner TextGrids -> word and phone intervals -> vowels.

Reads MFA TextGrids (Praat long or short text format, via ``praatio``) with ``words`` and
``phones`` tiers, or ``<speaker> - words`` / ``<speaker> - phones`` in multi-speaker files.
Phones may be ARPAbet with or without stress digits (english_us_arpa) or IPA as the
english_mfa model writes it; ``vowel_class`` maps both onto the six vowels of the paper.

Stage ``align`` (``run``): for a corpus with ``align_source: pocketsphinx`` the built-in aligner
(``agcc.extract.phones``) writes MFA-layout TextGrids of the transcripts to ``<out>/textgrids``
and ``<out>/manifest.csv`` points the ``textgrid`` column there; with ``align_source: textgrid``
the manifest is copied unchanged. The ``segments`` stage always reads ``<out>/manifest.csv``.
"""

from __future__ import annotations

import bisect
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from praatio import textgrid
from praatio.utilities.errors import PraatioException

from agcc import tracking
from agcc.corpora.base import read_manifest
from agcc.params import VOWELS, AlignParams, BaseParams
from agcc.skips import InputError

log = logging.getLogger(__name__)

SILENCE = frozenset({"", "sil", "sp"})  # compared in lower case
SPOKEN_NOISE = "spn"

# The 39 CMU / english_us_arpa phones; the 15 vowels may carry a stress digit 0-2.
ARPA_VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())
ARPA_CONSONANTS = frozenset("B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split())
_ARPA = re.compile(r"([A-Z]{1,2})([012]?)")

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
    ``phones`` that are neither ARPAbet nor a known IPA phone.
    """

    path: str
    speaker: str | None
    words: list[Interval]
    phones: list[Interval]
    n_silence: int = 0
    n_spn: int = 0
    unknown: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class VowelToken:
    """One vowel phone: its interval, canonical ARPAbet vowel, original label and word."""

    start: float
    end: float
    vowel: str
    phone: str
    word: str


# ---------------------------------------------------------------------------------------------
# Reading


def read_textgrid(path: str | Path, speaker: str | None = None) -> Alignment:
    """Read an MFA TextGrid (long or short Praat text format) into word and phone intervals.

    Tiers ``words``/``phones`` or ``<speaker> - words``/``<speaker> - phones``. With several
    speakers, ``speaker`` picks one; with exactly one, None uses it. A missing words tier gives
    an empty ``words`` list. Raises InputError naming the file when it is missing or
    unparseable, has no phones tier (the tiers found are listed), or has several speakers and
    none was chosen.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "missing file")
    try:
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    except (PraatioException, IndexError, KeyError, ValueError, UnicodeError, OSError) as e:
        raise InputError(path, f"unreadable TextGrid: {type(e).__name__}: {e}") from e
    names = list(tg.tierNames)
    chosen, phones_tier = _phones_tier(names, speaker, path)
    words_tier = phones_tier.removesuffix("phones") + "words"
    phones, n_sil, n_spn = _intervals(tg, phones_tier, path)
    words = _intervals(tg, words_tier, path)[0] if words_tier in names else []
    if words_tier not in names:
        log.debug("%s: no %r tier; vowels get no word", path, words_tier)
    unknown = Counter(p.label for p in phones if not is_known_phone(p.label))
    if unknown:
        log.debug("%s: unknown phone labels %s", path, dict(unknown))
    return Alignment(str(path), chosen, words, phones, n_sil, n_spn, dict(unknown))


def _phones_tier(names: list[str], speaker: str | None, path: Path) -> tuple[str | None, str]:
    """(speaker, name of the phones tier) for the requested speaker, or raise InputError."""
    speakers = [n.removesuffix(" - phones") for n in names if n.endswith(" - phones")]
    if speaker is not None and f"{speaker} - phones" in names:
        return speaker, f"{speaker} - phones"
    if "phones" in names and not speakers:
        return None, "phones"  # single-speaker layout, whoever was asked for
    if speaker is not None:
        raise InputError(
            path, f"no phones tier for speaker {speaker!r}: speakers {speakers}, tiers {names}"
        )
    if len(speakers) == 1:
        return speakers[0], f"{speakers[0]} - phones"
    if len(speakers) > 1:
        raise InputError(path, f"several speakers, choose one: {speakers}")
    raise InputError(path, f"no phones tier: tiers found {names}")


def _intervals(tg: textgrid.Textgrid, name: str, path: Path) -> tuple[list[Interval], int, int]:
    """Labelled intervals of one tier without silence/spn, and the silence and spn counts."""
    tier = tg.getTier(name)
    if not isinstance(tier, textgrid.IntervalTier):
        raise InputError(path, f"tier {name!r} is a {type(tier).__name__}, not an IntervalTier")
    kept: list[Interval] = []
    n_sil = n_spn = 0
    for start, end, label in tier.entries:
        label = label.strip()
        if label.lower() in SILENCE:
            n_sil += 1
        elif label.lower() == SPOKEN_NOISE:
            n_spn += 1
        else:
            kept.append(Interval(float(start), float(end), label))
    kept.sort(key=lambda iv: iv.start)
    return kept, n_sil, n_spn


# ---------------------------------------------------------------------------------------------
# Phone classes


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


# ---------------------------------------------------------------------------------------------
# The stage


def run(
    name: str, manifest: Path, source: str, ap: AlignParams, base: BaseParams, out_dir: Path
) -> None:
    """Write ``out_dir/manifest.csv`` whose ``textgrid`` column the segments stage reads.

    ``source="pocketsphinx"``: align every transcript into ``out_dir/textgrids`` and keep the
    aligned rows (the others go to ``skips.csv``); ``source="textgrid"``: copy the manifest.
    ``out_dir/textgrids`` always exists (empty for a copy), as DVC tracks it.
    """
    out_dir = Path(out_dir)
    params = {"source": source, "align": ap.model_dump(), "max_skip_share": base.max_skip_share}
    with tracking.corpus_stage_run("align", name, params, out_dir, base.max_skip_share) as stage:
        frame = read_manifest(manifest)
        stage.skips.n_seen = len(frame)
        (out_dir / "textgrids").mkdir(parents=True, exist_ok=True)
        log.info("align %s: %d utterances from %s, source %s", name, len(frame), manifest, source)
        if source == "pocketsphinx":
            from agcc.extract import phones  # pocketsphinx only when the corpus uses it

            frame, counts = phones.align_manifest(
                frame, out_dir / "textgrids", ap, stage.skips, name
            )
            stage.metrics |= counts
        elif source != "textgrid":
            raise ValueError(f"align source must be textgrid or pocketsphinx, got {source!r}")
        tmp = out_dir / "manifest.csv.tmp"
        frame.to_csv(tmp, index=False)
        tmp.replace(out_dir / "manifest.csv")
        log.info("align %s: wrote %s (%d utterances)", name, out_dir / "manifest.csv", len(frame))
        stage.metrics["utterances"] = len(frame)
