"""A CREMA-D pilot of two actors, one with videos and one audio-only, set up as documented.

Real CREMA-D file names and label files (summaryTable.csv with every row of the full corpus,
``labels: voice``), espeak-ng speech, videos cut from the fixture face video; the built-in
extractors (dlib, pocketsphinx). ``agcc check``, then prepare -> landmarks -> align -> segments
-> features for the pilot and a tiny demo corpus beside it, then cluster and analyze, all through
``agcc.cli.main``. The actor without videos is absent from the landmarks and segments stages, not
a skip; the label rows of the clips not on disk are absent from prepare, not skips.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from agcc.cli import main
from agcc.corpora.crema_d import SENTENCES
from agcc.io.segments import load_segments

from ..conftest import shared_path
from ..media import cut_video, fixture_video, need_espeak, speech, write_wav
from .conftest import tiny_params

CORPUS = "crema_d"
METADATA = ("data", "crema-d-metadata")
VIDEO_ACTOR, AUDIO_ACTOR = "1001", "1002"


def pilot_names(actors: tuple[str, ...], sentences: tuple[str, ...]) -> list[str]:
    """Real CREMA-D clip names of ``actors`` speaking ``sentences`` (from file-list.txt)."""
    names = shared_path(*METADATA, "file-list.txt").read_text().split()
    stems = [Path(n).stem for n in names if n.startswith("AudioWAV/")]
    return [s for s in stems if s[:4] in actors and s[5:8] in sentences]


def pilot_tree(root: Path, names: list[str], video_actors: tuple[str, ...]) -> dict[str, int]:
    """A CREMA-D folder: AudioWAV/*.wav (16 kHz espeak-ng), VideoFlash/*.flv of ``video_actors``
    (cut from the fixture face video, with the speech as audio), the real label files."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("summaryTable.csv", "VideoDemographics.csv"):
        shutil.copy(shared_path(*METADATA, name), root / name)
    source, n_video = fixture_video(), 0
    for i, utt in enumerate(names):
        rate = 130 + 10 * (i % 5)
        audio, _ = speech(SENTENCES[utt[5:8]], pad=0.25, rate=rate)
        write_wav(root / "AudioWAV" / f"{utt}.wav", audio)
        if utt[:4] in video_actors:
            start = (1.7 * i) % 15.0
            cut_video(source, root / "VideoFlash" / f"{utt}.flv", start, len(audio) / 16000, audio)
            n_video += 1
    return {"clips": len(names), "videos": n_video}


def pilot_corpus(root: Path, align_out: Path) -> dict:
    """The corpora entry of docs/corpora.md's pilot: voice labels, both built-in extractors."""
    return {
        "adapter": "crema_d",
        "root": str(root),
        "landmarks_source": "dlib",
        "landmarks_dir": str(root / "VideoFlash"),
        "align_source": "pocketsphinx",
        "textgrid_dir": str(align_out / "textgrids"),
        "labels": "voice",
        "split_by": "speaker",
    }


def _run(params: Path, *args: str) -> None:
    """One stage through the CLI; it must succeed."""
    assert main(["--params", str(params), *args]) == 0, args


def _per_corpus(params: Path, d: Path, name: str) -> None:
    """prepare -> landmarks -> align -> segments -> features of one corpus."""
    prep, lm, al = d / "prepared" / name, d / "landmarks" / name, d / "align" / name
    _run(params, "prepare", "--corpus", name, "--out", str(prep))
    manifest = str(prep / "manifest.csv")
    for stage, out in (("landmarks", lm), ("align", al), ("features", d / "features" / name)):
        _run(params, stage, "--corpus", name, "--manifest", manifest, "--out", str(out))
    seg = ["--manifest", str(al / "manifest.csv"), "--mouth", str(lm / "mouth.npz")]
    _run(params, "segments", "--corpus", name, *seg, "--out", str(d / "segments" / name))


@pytest.mark.slow
def test_two_actor_pilot_runs_through_segments_cluster_and_analyze(
    tracked: Path, capsys: pytest.CaptureFixture
) -> None:
    need_espeak()
    names = pilot_names((VIDEO_ACTOR, AUDIO_ACTOR), ("DFA", "TIE"))
    made = pilot_tree(tracked / "raw" / CORPUS, names, (VIDEO_ACTOR,))
    d = tracked / "data"
    raw = tiny_params(tracked)
    raw["corpora"] = {
        CORPUS: pilot_corpus(tracked / "raw" / CORPUS, d / "align" / CORPUS),
        "demo_improv": raw["corpora"]["demo_improv"],
    }
    # a stale direction, as after replacing the corpora: no stage below reads it
    raw["train"]["directions"] = [["demo_crema", "demo_improv"], ["demo_improv", "demo_crema"]]
    raw["landmarks"] |= {"workers": 2}
    raw["align"] |= {"workers": 1}
    raw["base"]["max_skip_share"] = 0.25  # the default: absent clips do not count
    params = tracked / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))

    _run(params, "demo")  # the demo corpus beside the pilot (Table I compares two corpora)
    assert main(["--params", str(params), "check", "--json", str(tracked / "check.json")]) == 2
    report = capsys.readouterr().out
    assert "train.directions[0][0]: unknown corpus 'demo_crema'" in report
    assert f"clips {len(names)}:" in report and "audio-only clips:" in report
    counts = json.loads((tracked / "check.json").read_text())[CORPUS]
    assert counts["speakers"] == 2 and counts["videos"] > 0 and counts["audio_only"] > 0
    assert counts["absent"] > 7000  # the summaryTable rows of clips not on disk, plus 1002
    assert report.count("PROBLEM") == 2  # the two stale directions, nothing else

    for name in (CORPUS, "demo_improv"):
        _per_corpus(params, d, name)
    _run(params, "cluster", "--segments-root", str(d / "segments"), "--out", str(d / "cluster"))
    analyze = ["--segments-root", str(d / "segments"), "--clusters", str(d / "cluster")]
    _run(
        params, "analyze", *analyze, "--features-root", str(d / "features"), "--out", str(d / "an")
    )

    splits = pd.read_csv(d / "prepared" / CORPUS / "splits.csv", dtype=str)
    assert dict(zip(splits["group"], splits["split"], strict=True)) == {
        VIDEO_ACTOR: "val",  # the actor with videos: the split the AG clusters are fitted on
        AUDIO_ACTOR: "train",
    }
    prepared = json.loads((d / "prepared" / CORPUS / "metrics.json").read_text())
    assert prepared["n_skipped"] == 0 and prepared["n_empty_splits"] == 2
    assert prepared["absent.label_without_audio"] == 7442 - len(names)
    lm = json.loads((d / "landmarks" / CORPUS / "metrics.json").read_text())
    assert lm["n_skipped"] == 0 and lm["dlib.videos_absent"] == 0
    assert lm["absent.audio_only"] == prepared["n_utts"] - lm["n_input"] > 0
    table, _ = load_segments(d / "segments" / CORPUS)
    assert set(table["speaker"].astype(str)) == {VIDEO_ACTOR} and len(table) > 10
    assert (d / "an" / "table1.md").is_file() and made["videos"] < made["clips"]
