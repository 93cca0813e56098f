"""Phone alignments as TextGrids: Montreal Forced Aligner layout, read and written here.

Reads MFA TextGrids (Praat long or short text format, via praatio) with words and phones tiers,
or '<speaker> - words' / '<speaker> - phones' tiers in multi-speaker files. Silence ('', sil, sp)
and spoken noise (spn) are dropped and counted. Writes the MFA layout (long text format, tiers
words then phones over [0, duration], silence as blank gaps) for the built-in aligner and the
demo corpora.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from praatio import textgrid
from praatio.utilities.errors import PraatioException

from agcc.phones import Alignment, Interval, is_known_phone
from agcc.skips import InputError

log = logging.getLogger(__name__)

SILENCE = frozenset({"", "sil", "sp"})  # compared in lower case
SPOKEN_NOISE = "spn"


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
    end = max([float(tg.maxTimestamp)] + [p.end for p in phones])
    return Alignment(str(path), chosen, words, phones, n_sil, n_spn, dict(unknown), end)


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


def write_textgrid(
    path: str | Path,
    words: Sequence[tuple[float, float, str]],
    phones: Sequence[tuple[float, float, str]],
    duration: float,
) -> Path:
    """Write an MFA-layout TextGrid atomically: tiers ``words`` then ``phones``, gaps = silence.

    Intervals with a blank label or no length are left out (they are silence in the layout).
    """
    path = Path(path)
    tg = textgrid.Textgrid()
    for name, entries in (("words", words), ("phones", phones)):
        tier = [(s, e, label) for s, e, label in entries if label and e > s]
        tg.addTier(textgrid.IntervalTier(name, tier, 0.0, duration))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    tg.save(str(tmp), format="long_textgrid", includeBlankSpaces=True)
    tmp.replace(path)
    return path
