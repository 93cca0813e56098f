"""Simulated perceptual labels: CREMA-D rater votes and MSP-IMPROV evaluations.

CREMA-D: per modality (voice, face, audio-visual) the vote equals the intended emotion with a
probability that grows with intensity (about 80-90%); otherwise it is a plausible confusion
(mostly neutral), and about 3% of votes are ties written like ``N:S`` (letters sorted).
MSP-IMPROV: the consensus letter is the target emotion for most utterances; an ``other_share``
of them get O (raters' majority on another emotion), 5% X (no majority) and 10% another of the
four classes. Rater lines are drawn to agree with the consensus letter.
"""

from __future__ import annotations

import numpy as np

CREMA_LETTERS = {
    "anger": "A",
    "disgust": "D",
    "fear": "F",
    "happiness": "H",
    "neutral": "N",
    "sadness": "S",
}
_CONFUSIONS = {
    "A": ("N", "D", "H", "F"),
    "D": ("N", "A", "S", "F"),
    "F": ("N", "S", "D", "A"),
    "H": ("N", "A", "F", "D"),
    "N": ("S", "H", "D", "A"),
    "S": ("N", "F", "D", "A"),
}
_CONFUSION_P = np.array([0.55, 0.2, 0.15, 0.1])
_MODALITIES = (("Voice", 0.80), ("Face", 0.86), ("MultiModal", 0.88))

IMPROV_LETTERS = {"anger": "A", "happiness": "H", "sadness": "S", "neutral": "N"}
_RATER_WORDS = {"A": "Angry", "H": "Happy", "S": "Sad", "N": "Neutral", "O": "Other"}
_SECONDARY = {
    "A": ("Frustrated", "Annoyed", "Angry"),
    "H": ("Excited", "Amused", "Happy"),
    "S": ("Disappointed", "Depressed", "Sad"),
    "N": ("Neutral", "Concerned", "Other"),
    "O": ("Surprised", "Fearful", "Disgusted"),
}
# Mean arousal, valence, dominance (1..5) of raters by the emotion actually portrayed.
_AVD = {
    "anger": (4.0, 2.0, 4.0),
    "happiness": (3.5, 4.3, 3.3),
    "sadness": (2.0, 2.0, 2.2),
    "neutral": (2.8, 3.0, 3.0),
}


def _level(rng: np.random.Generator, intensity: float, neutral: bool) -> float:
    """A rated intensity level 10..100 (mean rating of the raters who chose the vote)."""
    mean = 65.0 if neutral else 45.0 + 20.0 * intensity
    return float(np.clip(rng.normal(mean, 10.0), 10.0, 100.0))


def _fmt_level(x: float) -> str:
    """Levels as the real file writes them: up to two decimals, no trailing zeros."""
    return f"{round(x, 2):g}"


def crema_votes(emotion: str, intensity: float, rng: np.random.Generator) -> dict[str, str]:
    """summaryTable.csv cells (VoiceVote, VoiceLevel, FaceVote, ...) for one clip."""
    true = CREMA_LETTERS[emotion]
    cells = {}
    for name, p_base in _MODALITIES:
        p = float(np.clip(p_base + 0.06 * (intensity - 1.0), 0.6, 0.97))
        confusion = str(rng.choice(_CONFUSIONS[true], p=_CONFUSION_P))
        u = rng.random()
        if u < 0.03:
            letters = sorted({true, confusion})
            levels = [_level(rng, intensity, v == "N") for v in letters]
            vote, level = ":".join(letters), ":".join(_fmt_level(v) for v in levels)
        else:
            vote = true if u < 0.03 + p * 0.97 else confusion
            level = _fmt_level(_level(rng, intensity, vote == "N"))
        cells[f"{name}Vote"], cells[f"{name}Level"] = vote, level
    return cells


def improv_consensus(emotion: str, other_share: float, rng: np.random.Generator) -> str:
    """Consensus letter: target (most), O (``other_share``), X (5%) or another class (10%)."""
    target = IMPROV_LETTERS[emotion]
    u = rng.random()
    if u < other_share:
        return "O"
    if u < other_share + 0.05:
        return "X"
    if u < other_share + 0.15:
        others = [c for c in "AHS" if c != target] if target != "N" else list("AHS")
        return "N" if target != "N" and rng.random() < 0.6 else str(rng.choice(others))
    return target


def _rater_votes(consensus: str, target: str, n: int, rng: np.random.Generator) -> list[str]:
    """Each rater's primary category, agreeing with the consensus letter."""
    cats = list("AHSNO")
    if consensus == "X":  # no category above half: the target leads, the rest spread out
        top = n // 2
        rest = [str(c) for c in rng.permutation([c for c in cats if c != target])]
        votes = [target] * top + [rest[i % len(rest)] for i in range(n - top)]
    else:
        k = int(rng.integers(n // 2 + 1, n + 1))
        rest = [c for c in cats if c != consensus]
        votes = [consensus] * k + [str(c) for c in rng.choice(rest, size=n - k)]
    return [str(v) for v in rng.permutation(votes)]


def _fmt_score(x: float) -> str:
    """Scores like 4.0 or 3.6667."""
    return str(round(float(x), 4))


def improv_evaluation(
    utt_id: str, emotion: str, consensus: str, rng: np.random.Generator
) -> list[str]:
    """Evaluation.txt lines for one utterance: header, one line per rater, blank line."""
    n = int(rng.integers(5, 9))
    votes = _rater_votes(consensus, IMPROV_LETTERS[emotion], n, rng)
    avd = np.clip(np.round(rng.normal(_AVD[emotion], 0.7, size=(n, 3))), 1, 5)  # (n, 3)
    raters = rng.choice(np.arange(1, 41), size=n, replace=False)
    mean = avd.mean(axis=0)
    name = "UTD" + utt_id.removeprefix("MSP") + ".avi"
    lines = [
        f"{name}; {consensus}; A:{_fmt_score(mean[0])}; V:{_fmt_score(mean[1])}; "
        f"D:{_fmt_score(mean[2])} ; N:{n};"
    ]
    for r, v, (a, va, d) in zip(raters, votes, avd, strict=True):
        second = str(rng.choice(_SECONDARY[v]))
        lines.append(
            f"rater{r:02d}; {_RATER_WORDS[v]}; {second}; A:{_fmt_score(a)}; "
            f"V:{_fmt_score(va)}; D:{_fmt_score(d)};"
        )
    return [*lines, ""]
