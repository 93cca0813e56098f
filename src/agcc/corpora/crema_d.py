"""CREMA-D adapter: ``<root>/AudioWAV/AAAA_SSS_EEE_LL.wav`` plus ``summaryTable.csv``.

The video of a clip is ``<root>/VideoFlash/AAAA_SSS_EEE_LL.flv`` (empty when absent).

Labels: ``intended`` comes from the file name's emotion code; ``voice`` (audio-only raters) and
``multimodal`` (audio-visual raters) come from the ``VoiceVote`` / ``MultiModalVote`` columns of
``summaryTable.csv``, where ties such as ``"N:S"`` mean no consensus and are dropped (and counted).

The known bad clips (1076_MTI_SAD_XX has no audio, 1064_TIE_SAD_XX is zero length,
1064_IEO_DIS_MD is damaged) stay in the manifest: this stage does not open audio, and the stages
that read audio skip them with a reason in their own skip reports.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from agcc.corpora.base import Absent, LayoutError, Row
from agcc.params import EMOTIONS, CorpusParams
from agcc.skips import InputError, SkipReport

log = logging.getLogger(__name__)

SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
EMOTION_CODES = {
    "ANG": "anger",
    "HAP": "happiness",
    "SAD": "sadness",
    "NEU": "neutral",
    "DIS": "disgust",
    "FEA": "fear",
}
VOTE_LETTERS = {c[0]: name for c, name in EMOTION_CODES.items()}
LEVELS = ("LO", "MD", "HI", "XX")
VOTE_COLUMNS = {"voice": "VoiceVote", "multimodal": "MultiModalVote"}
NO_CONSENSUS = "no consensus"
SKIPPED = ""  # label row already reported as a skip
NAME_RE = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})")
EXAMPLE = "1001_DFA_ANG_XX.wav"


def parse_name(stem: str) -> tuple[str, str, str]:
    """Split ``AAAA_SSS_EEE_LL`` into (actor, sentence code, emotion code) or raise ValueError."""
    m = NAME_RE.fullmatch(stem)
    if m is None:
        raise ValueError(f"file name {stem!r} does not parse as AAAA_SSS_EEE_LL")
    actor, sent, emo, level = m.groups()
    if sent not in SENTENCES:
        raise ValueError(f"file name {stem!r} has unknown sentence code {sent!r}")
    if emo not in EMOTION_CODES:
        raise ValueError(f"file name {stem!r} has unknown emotion code {emo!r}")
    if level not in LEVELS:
        raise ValueError(f"file name {stem!r} has unknown level {level!r}")
    return actor, sent, emo


def read(
    cp: CorpusParams, skips: SkipReport, absent: Absent | None = None
) -> tuple[list[Row], Counter[str]]:
    """Rows of the kept utterances and the counts of dropped labels for one CREMA-D root.

    summaryTable.csv rows of clips without a wav (a partial copy of the corpus) are counted in
    ``absent``, not skipped.
    """
    root = Path(cp.root)
    absent = absent if absent is not None else Absent()
    names = _audio_names(root, skips)
    genders = _genders(root / "VideoDemographics.csv", skips)
    labels = _labels(root, cp.labels, names, skips, absent)
    rows: list[Row] = []
    dropped: Counter[str] = Counter()
    for utt, (actor, sent, _emo, audio) in tqdm(
        names.items(), desc="crema_d", leave=False, disable=None
    ):
        label = labels.get(utt)
        if label == SKIPPED:
            continue
        if label is None:
            skips.add(utt, audio, f"no label: {utt} has no row in summaryTable.csv")
        elif label not in EMOTIONS:
            dropped[label] += 1
        else:
            rows.append(
                {
                    "utt_id": utt,
                    "speaker": actor,
                    "gender": genders.get(actor, ""),
                    "session": "",
                    "sentence": sent,
                    "emotion": label,
                    "audio": audio,
                    "video": _video(root, utt),
                    "transcript": SENTENCES[sent],
                }
            )
    return rows, dropped


def video_hint(cp: CorpusParams) -> str:
    """Where a clip's video is looked for (for messages)."""
    return str(Path(cp.root) / "VideoFlash" / "<clip>.flv")


def _video(root: Path, utt: str) -> str:
    """``<root>/VideoFlash/<utt>.flv`` when it exists, else ""."""
    path = root / "VideoFlash" / f"{utt}.flv"
    return str(path) if path.is_file() else ""


def _audio_names(root: Path, skips: SkipReport) -> dict[str, tuple[str, str, str, str]]:
    """utt_id -> (actor, sentence, emotion code, audio path) for every parseable AudioWAV file."""
    audio_dir = root / "AudioWAV"
    if not audio_dir.is_dir():
        raise LayoutError(
            f"{root}: not a CREMA-D layout: expected a folder {audio_dir} holding files like "
            f"{EXAMPLE}"
        )
    wavs = sorted(audio_dir.glob("*.wav"))
    names: dict[str, tuple[str, str, str, str]] = {}
    for wav in wavs:
        try:
            names[wav.stem] = (*parse_name(wav.stem), str(wav))
        except ValueError as e:
            skips.add(wav.stem, wav, f"file name does not parse: {e}")
    if not names:
        raise LayoutError(
            f"{root}: not a CREMA-D layout: none of the {len(wavs)} .wav files in {audio_dir} "
            f"is named like {EXAMPLE} (AAAA_SSS_EEE_LL)"
        )
    log.info(
        "found %d CREMA-D clips in %s (%d unparseable)",
        len(names),
        audio_dir,
        len(wavs) - len(names),
    )
    return names


def _genders(path: Path, skips: SkipReport) -> dict[str, str]:
    """actor id -> "F"/"M" from VideoDemographics.csv; empty when the file is absent."""
    if not path.exists():
        log.warning("%s not found; gender left empty", path)
        return {}
    try:
        rows = _read_csv(path, ("ActorID", "Sex"))
    except InputError as e:
        skips.add_error(path.name, e)
        return {}
    sex = {"male": "M", "female": "F"}
    return {_cell(r, "ActorID"): sex.get(_cell(r, "Sex").lower(), "") for r in rows}


def _labels(
    root: Path,
    kind: str,
    names: dict[str, tuple[str, str, str, str]],
    skips: SkipReport,
    absent: Absent,
) -> dict[str, str]:
    """utt_id -> emotion name (kept or dropped) for the configured label kind."""
    if kind == "intended":
        return {utt: EMOTION_CODES[emo] for utt, (_, _, emo, _) in names.items()}
    path = root / "summaryTable.csv"
    if not path.exists():
        raise LayoutError(f"{root}: labels={kind!r} needs {path}, which does not exist")
    column = VOTE_COLUMNS[kind]
    try:
        rows = _read_csv(path, ("FileName", column))
    except InputError as e:
        skips.add_error(path.name, e)
        return {}
    labels: dict[str, str] = {}
    for i, r in enumerate(rows, start=2):
        utt, vote = _cell(r, "FileName"), _cell(r, column)
        if utt not in names:
            absent.add(
                "label_without_audio", f"{path.name} rows of clips not in {root / 'AudioWAV'}", utt
            )
        elif len(vote) != 1:
            labels[utt] = NO_CONSENSUS  # ties like "N:S" (or an empty vote)
        elif vote in VOTE_LETTERS:
            labels[utt] = VOTE_LETTERS[vote]
        else:
            skips.add(utt, f"{path}:{i}", f"label does not parse: unknown {column} {vote!r}")
            labels[utt] = SKIPPED
    return labels


def _cell(row: dict[str, str], column: str) -> str:
    """One stripped CSV cell; empty when a short row lacks it."""
    return (row.get(column) or "").strip()


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """All rows of a CSV as dicts; InputError when unreadable or missing a required column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"unreadable label file: {e}") from e
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(path, f"unreadable label file: missing columns {missing}, got {header}")
    return rows
