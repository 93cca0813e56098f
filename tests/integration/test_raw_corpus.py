"""A raw CREMA-D-style folder through the built-in extractors, with bad files mixed in.

wav + flv files, no OpenFace CSVs, no TextGrids: prepare -> landmarks (dlib) -> align
(pocketsphinx) -> segments, each stage through ``agcc.cli.main``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from agcc.cli import main
from agcc.corpora.crema_d import SENTENCES
from agcc.io.segments import load_segments

from ..media import cut_video, faceless_video, fixture_video, need_espeak, speech, write_wav
from .conftest import tiny_params

# (clip, start second in the fixture video); four speakers, six sentences
GOOD = [
    ("1001_IEO_ANG_XX", 0.0),
    ("1001_MTI_NEU_XX", 3.0),
    ("1002_DFA_HAP_XX", 6.0),
    ("1003_TSI_SAD_XX", 9.0),
    ("1004_IWL_NEU_XX", 12.0),
    ("1004_TAI_ANG_XX", 15.0),
]
NO_FACE, BAD_VIDEO, BAD_AUDIO = "1005_ITS_HAP_XX", "1005_IOM_SAD_XX", "1006_WSI_NEU_XX"
CORPUS = "raw_crema"


def _code(utt: str) -> str:
    """The sentence code of a CREMA-D clip name."""
    return utt.split("_")[1]


def _raw_corpus(root: Path) -> None:
    """AudioWAV/*.wav spoken by espeak-ng, VideoFlash/*.flv cut from the fixture; bad files."""
    video = fixture_video()
    for utt, start in GOOD + [(NO_FACE, 0.0), (BAD_VIDEO, 0.0), (BAD_AUDIO, 0.0)]:
        audio, _ = speech(SENTENCES[_code(utt)], pad=0.25)
        wav = write_wav(root / "AudioWAV" / f"{utt}.wav", audio)
        flv = root / "VideoFlash" / f"{utt}.flv"
        if utt == NO_FACE:
            faceless_video(flv, seconds=len(audio) / 16000 + 0.2)
        elif utt == BAD_VIDEO:
            flv.write_bytes(b"FLV\x01 this is not a video" * 20)
        else:
            cut_video(video, flv, start, len(audio) / 16000 + 0.2, audio)
        if utt == BAD_AUDIO:
            wav.write_bytes(b"RIFF\x00\x00 not a wav file")


def _params(tracked: Path) -> Path:
    """Tiny params plus the raw corpus with both built-in extractors."""
    raw = tiny_params(tracked)
    root = tracked / "raw" / CORPUS
    raw["corpora"][CORPUS] = {
        "adapter": "crema_d",
        "root": str(root),
        "landmarks_dir": str(root / "VideoFlash"),
        "textgrid_dir": str(tracked / "data" / "align" / CORPUS / "textgrids"),
        "landmarks_source": "dlib",
        "align_source": "pocketsphinx",
    }
    raw["base"]["max_skip_share"] = 0.4
    raw["landmarks"] |= {"workers": 2}
    raw["align"] |= {"workers": 1}
    path = tracked / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _stage(params: Path, *args: str) -> None:
    """Run one stage through the CLI and require success."""
    assert main(["--params", str(params), *args]) == 0, args


def _landmarks(params: Path, prep: Path, lm: Path) -> None:
    """Run the landmarks stage on the prepared manifest."""
    manifest = str(prep / "manifest.csv")
    _stage(params, "landmarks", "--corpus", CORPUS, "--manifest", manifest, "--out", str(lm))


@pytest.mark.slow
def test_raw_crema_folder_runs_through_the_built_in_extractors(tracked: Path) -> None:
    need_espeak()
    _raw_corpus(tracked / "raw" / CORPUS)
    params = _params(tracked)
    d = tracked / "data"
    prep, lm, al, seg = (d / s / CORPUS for s in ("prepared", "landmarks", "align", "segments"))
    _stage(params, "prepare", "--corpus", CORPUS, "--out", str(prep))
    _landmarks(params, prep, lm)
    _stage(
        params,
        "align",
        "--corpus",
        CORPUS,
        "--manifest",
        str(prep / "manifest.csv"),
        "--out",
        str(al),
    )
    _stage(
        params,
        "segments",
        "--corpus",
        CORPUS,
        "--manifest",
        str(al / "manifest.csv"),
        "--mouth",
        str(lm / "mouth.npz"),
        "--out",
        str(seg),
    )

    assert not list(tracked.rglob("*.TextGrid")) or all(
        p.is_relative_to(al / "textgrids") for p in tracked.rglob("*.TextGrid")
    )
    good = {u for u, _ in GOOD}
    lm_skips = pd.read_csv(lm / "skips.csv").set_index("item")
    assert set(lm_skips.index) == {NO_FACE, BAD_VIDEO}
    assert lm_skips.loc[NO_FACE, "reason"].startswith("no face found: none in")
    assert lm_skips.loc[BAD_VIDEO, "reason"].startswith("unreadable video")
    assert lm_skips.loc[BAD_VIDEO, "path"].endswith(f"{BAD_VIDEO}.flv")
    al_skips = pd.read_csv(al / "skips.csv").set_index("item")
    assert list(al_skips.index) == [BAD_AUDIO]
    assert al_skips.loc[BAD_AUDIO, "path"].endswith(f"{BAD_AUDIO}.wav")
    assert "unreadable audio" in al_skips.loc[BAD_AUDIO, "reason"]

    table, frames = load_segments(seg)
    assert set(table["utt_id"]) == good  # every clip with a face and usable audio
    assert len(table) >= 2 * len(good)
    assert {"AA", "IY", "EH", "AH"} <= set(table["vowel"])
    assert all(f.shape[1] == 24 and np.isfinite(f).all() for f in frames)
    # vowels sit in the words that carry them ("I would like a new alarm clock")
    words = set(zip(table["word"].str.lower(), table["vowel"], strict=True))
    assert ("new", "UW") in words and ("clock", "AA") in words
    cache = sorted(p.stem for p in (lm / "openface_cache").glob("*.csv"))
    assert set(cache) == good | {NO_FACE, BAD_AUDIO}  # BAD_AUDIO's video is fine

    # a second run reuses every cached CSV
    _landmarks(params, prep, lm)
    metrics = yaml.safe_load((lm / "metrics.json").read_text())
    assert metrics["dlib.videos_cached"] == len(good) + 2
    assert metrics["dlib.videos_extracted"] == 0
    assert metrics["dlib.face_found_share"] > 0.8
