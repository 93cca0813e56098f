"""``agcc check``: what the pipeline will find in each corpus, before anything runs.

For every corpus of ``params.yaml`` (or those named) it reads what the ``prepare`` stage reads
(file names and label files; no audio or video is decoded) and reports: the paths it looked in,
clips, labels, speakers, videos, landmark CSVs, TextGrids and transcripts found, the items
absent by design and the skips, and what each later stage will do with them: the splits (and
what a small corpus cannot compute), how many clips the landmarks, align, segments and features
stages will read, and whether a stage would stop at ``base.max_skip_share``. Then the settings
that tie corpora together: ``train.directions``, the two corpora of Table I, the cluster fit
split. Not a DVC stage: it writes nothing (``--json`` saves the counts).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from agcc.corpora import VIDEO_LOOKED_FOR, build_manifest
from agcc.corpora.base import LayoutError
from agcc.corpora.splits import SPLIT_USES, add_splits, keep_emotions
from agcc.errors import AgccError
from agcc.params import CorpusParams, Params
from agcc.skips import SkipReport

log = logging.getLogger(__name__)

#: Where each adapter finds the audio and the labels (for the report).
LOOKED_IN = {
    "crema_d": ("{root}/AudioWAV/*.wav", "{root}/summaryTable.csv (labels: voice, multimodal)"),
    "msp_improv": ("{root}/**/MSP-IMPROV-*.wav", "{root}/Evaluation.txt (or below it)"),
    "manifest": ("the audio column of the manifest CSV", "{csv}"),
}


@dataclass
class CorpusCheck:
    """What one corpus holds and what the stages will do with it."""

    name: str
    lines: list[str] = field(default_factory=list)
    counts: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        """Add one report line."""
        self.lines.append(f"  {text}")

    def problem(self, text: str) -> None:
        """Add one line that would stop a stage; it is also counted."""
        self.problems.append(f"{self.name}: {text}")
        self.lines.append(f"  PROBLEM: {text}")


def run(params: Params, names: list[str] | None = None) -> tuple[str, dict, list[str]]:
    """The report text, its counts (per corpus and overall) and the problems found."""
    checks = [check_corpus(n, params.corpus(n), params) for n in names or list(params.corpora)]
    overall = check_settings(params, checks)
    text = "\n".join(
        [line for c in checks for line in [f"corpus {c.name}", *c.lines]]
        + ["settings", *overall.lines]
    )
    counts = {c.name: c.counts for c in checks}
    return text, counts, [p for c in [*checks, overall] for p in c.problems]


def check_corpus(name: str, cp: CorpusParams, params: Params) -> CorpusCheck:
    """Read one corpus as prepare would and report what each stage will do with it."""
    c = CorpusCheck(name)
    audio, labels = LOOKED_IN[cp.adapter]
    csv = cp.manifest_csv or f"{cp.root}/manifest.csv"
    c.say(f"adapter {cp.adapter}, root {cp.root}")
    c.say(f"audio looked for in {audio.format(root=cp.root)}")
    c.say(f"labels looked for in {labels.format(root=cp.root, csv=csv)}")
    c.say(f"videos at {VIDEO_LOOKED_FOR[cp.adapter](cp)}")
    skips = SkipReport(f"check@{name}")
    if cp.root in (params.demo.crema_out, params.demo.improv_out) and not Path(cp.root).exists():
        c.say("not generated yet: the demo stage (`dvc repro demo`) writes this corpus")
        return c
    try:
        manifest = build_manifest(name, cp, skips)
    except (LayoutError, AgccError) as e:
        c.problem(f"prepare cannot read the corpus: {e}")
        return c
    skips.n_seen = manifest.n_seen
    frame, dropped = keep_emotions(manifest.frame, manifest.dropped, params.base.emotions)
    c.counts |= {
        "clips": manifest.n_seen,
        "utterances": len(frame),
        "dropped": sum(dropped.values()),
        "skipped": skips.n_skipped,
        "absent": sum(manifest.absent.counts.values()),
        "speakers": frame["speaker"].nunique(),
    }
    c.say(
        f"clips {manifest.n_seen}: {len(frame)} kept in {len(params.base.emotions)} classes, "
        f"{sum(dropped.values())} dropped ({dict(dropped) or 'none'}), {skips.n_skipped} skipped"
    )
    for line in manifest.absent.lines():
        c.say(line)
    _skip_line(c, "prepare", skips, params.base.max_skip_share)
    if frame.empty:
        c.problem("no utterance left after the emotion filter: nothing to prepare")
        return c
    split = _splits(c, frame, cp, params)
    _side_files(c, frame if split is None else split, cp, params)
    return c


def _skip_line(c: CorpusCheck, stage: str, skips: SkipReport, max_share: float) -> None:
    """Report a stage's expected skips; a problem when they pass ``max_skip_share``."""
    if not skips.n_skipped:
        return
    c.say(f"{stage} skips: {skips.summary()}")
    if skips.share() > max_share:
        c.problem(
            f"{stage} would stop: {skips.n_skipped} of {skips.n_seen} skipped "
            f"({skips.share():.1%} > base.max_skip_share {max_share:.1%})"
        )


def _splits(
    c: CorpusCheck, frame: pd.DataFrame, cp: CorpusParams, params: Params
) -> pd.DataFrame | None:
    """The splits prepare will write (None when it cannot split), and the empty splits' gaps."""
    pp = params.prepare
    seed, order = params.base.seed, pp.pilot_split_order
    try:
        split = add_splits(frame, cp.split_by, pp.split_fractions, seed, order)
    except AgccError as e:
        c.problem(f"prepare cannot split: {e}")
        return None
    for s in pp.split_fractions:
        part = split[split["split"] == s]
        groups = sorted(part[cp.split_by].unique())
        c.counts[f"split.{s}.n_utts"] = len(part)
        shown = ", ".join(groups[:6]) + (", ..." if len(groups) > 6 else "")
        plural = "" if len(groups) == 1 else "s"
        c.say(f"split {s}: {len(part)} utterances, {len(groups)} {cp.split_by}{plural} ({shown})")
        if part.empty:
            c.say(f"  split {s} is empty: {SPLIT_USES.get(s, 'what reads it')} cannot be computed")
    return split


def _exists(paths: pd.Series) -> pd.Series:
    """Whether each non-empty path cell names an existing file."""
    return paths.map(lambda p: bool(p) and Path(p).is_file())


def _side_files(c: CorpusCheck, frame: pd.DataFrame, cp: CorpusParams, params: Params) -> None:
    """Videos, landmark CSVs, TextGrids and transcripts, and what each stage will read."""
    video = frame["video"] != ""
    audio_only = video.eq(False) & (frame["landmarks"] == "")
    visual = frame[~audio_only]
    c.counts |= {"videos": int(video.sum()), "audio_only": int(audio_only.sum())}
    c.say(f"videos {int(video.sum())}; audio-only clips {int(audio_only.sum())} (absent)")
    if cp.landmarks_source == "dlib":
        c.say(f"landmarks (dlib): {len(visual)} videos to extract landmarks from")
        n_landmarks = len(visual)
    else:
        found = _exists(visual["landmarks"])
        n_landmarks = int(found.sum())
        c.say(
            f"landmarks (OpenFace CSVs below {cp.landmarks_dir}): {n_landmarks} found, "
            f"{int((~found).sum())} clips with a video but no CSV (skips)"
        )
        _share(c, "landmarks", int((~found).sum()), len(visual), params.base.max_skip_share)
    if cp.align_source == "pocketsphinx":
        n_text = int((visual["transcript"].str.strip() != "").sum())
        c.say(f"align (pocketsphinx): {n_text} of {len(visual)} video clips have a transcript")
        n_tg = n_text
    else:
        n_tg = int(_exists(visual["textgrid"]).sum())
        c.say(f"TextGrids below {cp.textgrid_dir}: {n_tg} of {len(visual)} video clips")
        _share(c, "segments", len(visual) - n_tg, len(visual), params.base.max_skip_share)
    c.counts |= {"landmarks": n_landmarks, "textgrids": n_tg}
    c.say(f"segments: at most {min(n_landmarks, n_tg)} clips with a mouth track and phones")
    c.say(f"features: {len(frame)} audio files (audio-only clips included)")
    fit = params.cluster.fit_split
    n_fit = int((visual["split"] == fit).sum())
    c.counts["fit_clips"] = n_fit
    c.say(f"cluster fit split {fit!r}: {n_fit} clips with video or landmarks")


def _share(c: CorpusCheck, stage: str, n_bad: int, n: int, max_share: float) -> None:
    """A problem when ``n_bad`` of ``n`` passes ``max_skip_share``."""
    if n and n_bad / n > max_share:
        c.problem(
            f"{stage} would stop: {n_bad} of {n} inputs missing ({n_bad / n:.1%} > "
            f"base.max_skip_share {max_share:.1%})"
        )


def check_settings(params: Params, checks: list[CorpusCheck]) -> CorpusCheck:
    """Settings across corpora: directions, Table I's two corpora, the cluster fit split."""
    s = CorpusCheck("settings")
    for problem in params.direction_problems():
        s.problem(f"{problem} (train and tune would stop; other stages run)")
    dirs = [f"{a}->{b}" for a, b in params.train.directions]
    s.say(f"train.directions: {', '.join(dirs) or 'none (train needs two corpora)'}")
    if len(params.corpora) < 2:
        s.say("analyze (Table I, Fig. 1) compares two corpora: add a second one to run it")
    if checks and all(c.counts.get("fit_clips", 0) == 0 for c in checks):
        s.problem(f"no corpus has video clips in cluster.fit_split {params.cluster.fit_split!r}")
    return s


def write_json(counts: dict, path: Path) -> None:
    """Save the counts of the report as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
