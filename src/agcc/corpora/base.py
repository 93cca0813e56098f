"""Types and helpers shared by the corpus adapters: the manifest schema and side-file lookup.

An adapter turns one corpus layout into rows of :data:`MANIFEST_COLUMNS`. Out-of-class labels are
counted in :attr:`Manifest.dropped` (a design choice, not an error); unusable input (a name that
does not parse, a label that does not join) goes to the stage's :class:`~agcc.skips.SkipReport`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from agcc.io.manifest import MANIFEST_COLUMNS
from agcc.io.manifest import read_manifest as read_manifest  # TEMP re-export (restructure)
from agcc.params import EMOTIONS, CorpusParams

log = logging.getLogger(__name__)

LANDMARK_SUFFIX = ".csv"
TEXTGRID_SUFFIX = ".TextGrid"

# An adapter row: utt_id, speaker, gender, session, sentence, emotion, audio, transcript and
# optionally video/landmarks/textgrid; build_manifest adds corpus, split and the side-file paths.
# ``video`` is "" when the corpus has no video for the utterance.
Row = dict[str, str]

# Emotion spellings accepted where a corpus gives free-form labels (lower case keys).
EMOTION_ALIASES: dict[str, str] = {
    **{e: e for e in EMOTIONS},
    **dict.fromkeys(("neu", "n"), "neutral"),
    **dict.fromkeys(("angry", "ang", "a"), "anger"),
    **dict.fromkeys(("happy", "hap", "h"), "happiness"),
    **dict.fromkeys(("sad", "s"), "sadness"),
}


class LayoutError(ValueError):
    """A corpus root does not have the layout its adapter expects."""


#: Names of absent items shown in a summary line.
ABSENT_EXAMPLES = 5


@dataclass
class Absent:
    """Items missing by design (not failures): counted per reason, first names kept.

    A label row of a clip the user does not have, or an audio-only clip without video, is a
    fact about the copy of the corpus, not a broken file: it is summarised in one line per
    reason and does not count against ``base.max_skip_share``.
    """

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, reason: str, item: str) -> None:
        """Count one absent item under ``reason`` (metrics: ``absent.<kind>``)."""
        self.counts[reason] += 1
        self.kinds[reason] = kind
        names = self.examples.setdefault(reason, [])
        if len(names) < ABSENT_EXAMPLES:
            names.append(item)

    def lines(self) -> list[str]:
        """One line per reason: count, reason and the first few names."""
        return [
            f"{n} {reason} (absent by design, not skips): {', '.join(self.examples[reason])}"
            + (", ..." if n > len(self.examples[reason]) else "")
            for reason, n in sorted(self.counts.items())
        ]

    def log(self, where: str) -> None:
        """Log the summary lines, prefixed with ``where``."""
        for line in self.lines():
            log.info("%s: %s", where, line)

    def metrics(self) -> dict[str, int]:
        """Counts per kind as metrics: ``absent.<kind>``."""
        out: Counter[str] = Counter()
        for reason, n in self.counts.items():
            out[f"absent.{self.kinds[reason]}"] += n
        return dict(out)


@dataclass
class Manifest:
    """One corpus as a table of kept utterances plus the out-of-class labels that were dropped.

    ``n_seen`` counts every item looked at: kept rows, dropped labels and skipped items (not the
    ``absent`` ones: label rows of clips not on disk, videos an audio-only clip does not have).
    """

    frame: pd.DataFrame
    dropped: Counter[str] = field(default_factory=Counter)
    n_seen: int = 0
    absent: Absent = field(default_factory=Absent)


def empty_frame() -> pd.DataFrame:
    """A manifest frame with the schema's columns and no rows."""
    return pd.DataFrame({c: pd.Series(dtype=str) for c in MANIFEST_COLUMNS})


def rows_to_frame(rows: list[Row], corpus: str) -> pd.DataFrame:
    """Build the manifest frame (schema column order, sorted by utt_id) from adapter rows."""
    if not rows:
        return empty_frame()
    frame = pd.DataFrame(rows)
    frame["corpus"] = corpus
    frame["split"] = ""
    for col in MANIFEST_COLUMNS:
        if col not in frame:
            frame[col] = ""
    frame = frame[list(MANIFEST_COLUMNS)].fillna("").astype(str)
    return frame.sort_values("utt_id", kind="stable").reset_index(drop=True)


def index_by_stem(folder: Path, suffix: str) -> dict[str, str]:
    """Map file stem -> path for every ``*suffix`` file below ``folder`` (recursive).

    Users keep OpenFace and aligner outputs in their own nested folders, so the lookup goes by
    utterance id rather than by a fixed sub-path. When a stem occurs twice the shallowest path
    (then the first in sorted order) wins and a warning says how many were ambiguous.
    """
    found: dict[str, str] = {}
    dupes = 0
    for p in sorted(folder.rglob(f"*{suffix}"), key=lambda p: (len(p.parts), p.as_posix())):
        if not p.is_file():
            continue
        stem = p.name[: -len(suffix)]
        if stem in found:
            dupes += 1
            continue
        found[stem] = str(p)
    if dupes:
        log.warning(
            "%s: %d %s files share a stem with another; kept the first", folder, dupes, suffix
        )
    return found


def side_paths(utt_ids: list[str], folder: str, suffix: str, what: str) -> list[str]:
    """Path of each utterance's side file (landmarks or TextGrid) below ``folder``.

    A file found anywhere below the folder is used; otherwise the expected flat path
    ``<folder>/<utt_id><suffix>`` is kept so that later stages can report it as missing.
    """
    index = side_index(folder, suffix, what)
    root = Path(folder)
    return [index.get(u, str(root / f"{u}{suffix}")) for u in utt_ids]


def side_index(folder: str, suffix: str, what: str) -> dict[str, str]:
    """Stem -> path of the ``*suffix`` files below ``folder`` ({} when it does not exist)."""
    root = Path(folder)
    if not root.is_dir():
        log.warning("%s folder %s does not exist; using expected paths", what, root)
        return {}
    index = index_by_stem(root, suffix)
    log.info("indexed %d %s files (*%s) below %s", len(index), what, suffix, root)
    return index


def attach_side_paths(frame: pd.DataFrame, cp: CorpusParams) -> pd.DataFrame:
    """Fill empty ``landmarks`` and ``textgrid`` cells from the configured folders.

    Only the sources read from files are looked up: with ``landmarks_source: dlib`` the landmarks
    stage extracts the CSVs from the videos, with ``align_source: pocketsphinx`` the align stage
    writes the TextGrids, and those cells stay empty. A clip with neither a video nor a landmark
    CSV is audio-only by design and its ``landmarks`` cell stays empty; a clip with a video but
    no CSV keeps the expected path, reported as missing by the landmarks stage.
    """
    todo = frame["landmarks"] == ""
    if cp.landmarks_source == "openface_csv" and todo.any():
        index = side_index(cp.landmarks_dir, LANDMARK_SUFFIX, "landmark")
        expected = frame["utt_id"].map(lambda u: str(Path(cp.landmarks_dir) / f"{u}.csv"))
        found = frame["utt_id"].map(lambda u: index.get(u, ""))
        audio_only = todo & (found == "") & (frame["video"] == "")
        fill = todo & ~audio_only
        frame.loc[fill, "landmarks"] = found[fill].where(found[fill] != "", expected[fill])
    todo = frame["textgrid"] == ""
    if cp.align_source == "textgrid" and todo.any():
        ids = frame.loc[todo, "utt_id"].tolist()
        frame.loc[todo, "textgrid"] = side_paths(ids, cp.textgrid_dir, TEXTGRID_SUFFIX, "TextGrid")
    return frame


def metric_key(label: str) -> str:
    """A label as an MLflow-safe metric name part: ``"other (O)"`` -> ``"other_O"``."""
    return re.sub(r"[^\w.-]+", "_", label).strip("_") or "unnamed"
