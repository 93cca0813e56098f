"""MSP-IMPROV adapter: ``**/MSP-IMPROV-*.wav`` plus the consensus labels of ``Evaluation.txt``.

``Evaluation.txt`` (``Evalution.txt`` in some releases) holds, per utterance, a header line
``UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:4.0; V:2.0; D:3.5 ; N:5;`` followed by one line per rater.
Only header lines are read; the ``UTD-`` prefix becomes ``MSP-`` to join the audio. Consensus
letters A/H/S/N are kept; O (other emotion) and X (no agreement) are dropped and counted.
Speakers F0n and M0n record session n together, so splits go by session. The video of an
utterance is the ``<utt_id>.avi`` found anywhere below the root (``Video/session1/...`` in the
release; empty when absent).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from agcc.corpora.base import Absent, LayoutError, Row, index_by_stem
from agcc.params import EMOTIONS, CorpusParams
from agcc.skips import SkipReport

log = logging.getLogger(__name__)

LABEL_FILES = ("Evaluation.txt", "Evalution.txt")
CONSENSUS = {
    "A": "anger",
    "H": "happiness",
    "S": "sadness",
    "N": "neutral",
    "O": "other (O)",
    "X": "no agreement (X)",
}
# MSP-IMPROV-S{sentence}{target emotion}-{gender}{session}-{scenario}-{lead pair}{turn}
UTT_RE = re.compile(r"MSP-IMPROV-S(\d{2})([A-Z])-([FM])(\d{2})-([A-Z])-([FM]{2})(\d{2,3})")
HEADER_START = ("UTD-IMPROV-", "MSP-IMPROV-")
HEADER_NAME_RE = re.compile(r"(?:UTD|MSP)(-IMPROV-\S+?)(?:\.avi)?")
BAD_HEADER_NAME_RE = re.compile(r"(?:UTD|MSP)(-IMPROV-[A-Za-z0-9-]+)")
SCORE_RE = re.compile(r"[A-Za-z]+\s*:\s*[-+]?\d+(?:\.\d*)?")
EXAMPLE = "MSP-IMPROV-S01A-F01-P-FM01.wav"
SKIPPED = ""  # label line already reported as a skip


def parse_utt(utt: str) -> Row:
    """Speaker, gender, session and sentence of an utterance id, or raise ValueError."""
    m = UTT_RE.fullmatch(utt)
    if m is None:
        raise ValueError(f"name {utt!r} does not parse as MSP-IMPROV-S01A-F01-P-FM01")
    sent, _target, gender, digits = m.group(1, 2, 3, 4)
    return {
        "speaker": f"{gender}{digits}",
        "gender": gender,
        "session": str(int(digits)),
        "sentence": f"S{sent}",
    }


def parse_header(line: str) -> tuple[str, str]:
    """(utt_id with the MSP- prefix, emotion name) of one Evaluation.txt header line."""
    fields = [f.strip() for f in line.strip().rstrip(";").split(";")]
    m = HEADER_NAME_RE.fullmatch(fields[0])
    if m is None:
        raise ValueError(f"utterance {fields[0]!r} is not like UTD-IMPROV-S01A-F01-P-FM01.avi")
    utt = "MSP" + m.group(1)
    parse_utt(utt)
    if len(fields) < 2 or fields[1] not in CONSENSUS:
        got = fields[1] if len(fields) > 1 else None
        raise ValueError(f"consensus label {got!r} is not one of {' '.join(CONSENSUS)}")
    bad = [f for f in fields[2:] if f and not SCORE_RE.fullmatch(f)]
    if bad:
        raise ValueError(f"score fields {bad} are not like 'A:4.0'")
    return utt, CONSENSUS[fields[1]]


def read(
    cp: CorpusParams, skips: SkipReport, absent: Absent | None = None
) -> tuple[list[Row], Counter[str]]:
    """Rows of the kept utterances and the counts of dropped labels for one MSP-IMPROV root.

    Labels of utterances without a wav (a partial copy of the corpus) are counted in ``absent``.
    """
    root = Path(cp.root)
    absent = absent if absent is not None else Absent()
    label_file = find_label_file(root)
    audio = _audio_files(root, skips)
    labels = _read_labels(label_file, skips)
    videos = index_by_stem(root, ".avi")
    rows: list[Row] = []
    dropped: Counter[str] = Counter()
    for utt, wav in tqdm(audio.items(), desc="msp_improv", leave=False, disable=None):
        label = labels.get(utt)
        if label == SKIPPED:
            continue  # its label line is already a skip
        if label is None:
            skips.add(utt, wav, f"no label: {utt} has no entry in {label_file.name}")
        elif label not in EMOTIONS:
            dropped[label] += 1
        else:
            row = {"utt_id": utt, "emotion": label, "audio": wav, "video": videos.get(utt, "")}
            row |= parse_utt(utt)
            rows.append(row | {"transcript": _transcript(root, utt)})
    for utt in sorted(u for u in labels.keys() - audio.keys() if labels[u] != SKIPPED):
        absent.add(
            "label_without_audio",
            f"{label_file.name} entries of utterances without a wav below {root}",
            utt,
        )
    return rows, dropped


def video_hint(cp: CorpusParams) -> str:
    """Where an utterance's video is looked for (for messages)."""
    return f"<utt_id>.avi below {cp.root}"


def find_label_file(root: Path) -> Path:
    """``Evaluation.txt`` (or the misspelt ``Evalution.txt``) at the root or below it."""
    if not root.is_dir():
        raise LayoutError(f"{root}: not an MSP-IMPROV layout: the folder does not exist")
    for name in LABEL_FILES:
        if (root / name).is_file():
            return root / name
    found = sorted(
        (p for n in LABEL_FILES for p in root.rglob(n) if p.is_file()), key=lambda p: len(p.parts)
    )
    if not found:
        raise LayoutError(
            f"{root}: not an MSP-IMPROV layout: no {' or '.join(LABEL_FILES)} at or below it"
        )
    return found[0]


def _audio_files(root: Path, skips: SkipReport) -> dict[str, str]:
    """utt_id -> wav path for every parseable ``MSP-IMPROV-*.wav`` below the root."""
    wavs = sorted(root.rglob("MSP-IMPROV-*.wav"))
    audio: dict[str, str] = {}
    for wav in wavs:
        try:
            parse_utt(wav.stem)
        except ValueError as e:
            skips.add(wav.stem, wav, f"file name does not parse: {e}")
            continue
        if wav.stem in audio:
            skips.add(wav.stem, wav, f"duplicate audio file: also at {audio[wav.stem]}")
            continue
        audio[wav.stem] = str(wav)
    if not audio:
        raise LayoutError(
            f"{root}: not an MSP-IMPROV layout: none of the {len(wavs)} MSP-IMPROV-*.wav files "
            f"below it is named like {EXAMPLE}"
        )
    log.info("found %d MSP-IMPROV clips below %s", len(audio), root)
    return audio


def _read_labels(path: Path, skips: SkipReport) -> dict[str, str]:
    """utt_id -> emotion name from the header lines; bad lines are skips naming file and line."""
    try:
        # Rater comments are free text in mixed encodings; only the ASCII header lines matter.
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        skips.add(path.name, path, f"unreadable label file: {e}")
        return {}
    labels: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith(HEADER_START):
            continue  # per-rater lines and blank separators
        try:
            utt, label = parse_header(line)
        except ValueError as e:
            skips.add(f"{path.name}:{i}", f"{path}:{i}", f"label line does not parse: {e}")
            name = BAD_HEADER_NAME_RE.match(line.strip())
            if name is not None:  # its audio is not skipped a second time for want of a label
                labels.setdefault("MSP" + name.group(1), SKIPPED)
            continue
        if utt in labels:
            skips.add(utt, f"{path}:{i}", f"duplicate label entry: first at line {first_line[utt]}")
            continue
        labels[utt], first_line[utt] = label, i
    log.info("read %d consensus labels from %s", len(labels), path)
    return labels


def _transcript(root: Path, utt: str) -> str:
    """Words of ``<root>/transcripts/<utt>.txt`` on one line, or "" when absent or unreadable."""
    path = root / "transcripts" / f"{utt}.txt"
    try:
        return " ".join(path.read_text(encoding="utf-8", errors="replace").split())
    except FileNotFoundError:
        return ""
    except OSError as e:
        log.warning("%s: unreadable transcript (%s); left empty", path, e)
        return ""
