"""The manifest's ``video`` column: found by each adapter, empty when absent."""

from __future__ import annotations

from pathlib import Path

from agcc.corpora import build_manifest
from agcc.io.manifest import read_manifest
from agcc.params import CorpusParams
from agcc.skips import SkipReport


def _touch(path: Path, text: str = "") -> Path:
    """Create a file (and its folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _videos(cp: CorpusParams) -> dict[str, str]:
    """utt_id -> video cell of the corpus's manifest."""
    frame = build_manifest("c", cp, SkipReport("prepare@t")).frame
    return dict(zip(frame["utt_id"], frame["video"], strict=True))


def test_crema_d_videos_are_videoflash_flv_files(tmp_path: Path) -> None:
    for utt in ("1001_DFA_ANG_XX", "1002_IEO_SAD_XX"):
        _touch(tmp_path / "AudioWAV" / f"{utt}.wav")
    flv = _touch(tmp_path / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    _touch(tmp_path / "VideoFlash" / "1002_IEO_SAD_XX.mp4")  # not the CREMA-D name
    cp = CorpusParams(adapter="crema_d", root=str(tmp_path), landmarks_dir="lm", textgrid_dir="tg")
    assert _videos(cp) == {"1001_DFA_ANG_XX": str(flv), "1002_IEO_SAD_XX": ""}


def test_msp_improv_videos_are_found_below_the_root(tmp_path: Path) -> None:
    utts = ("MSP-IMPROV-S01A-F01-P-FM01", "MSP-IMPROV-S02H-M01-P-MF02")
    lines = []
    for utt in utts:
        _touch(tmp_path / "Audio" / "session1" / utt[11:15] / "P" / f"{utt}.wav")
        lines.append(f"UTD{utt[3:]}.avi; {utt[14]}; A:3.0; V:3.0; D:3.0; N:5;")
    _touch(tmp_path / "Evaluation.txt", "\n".join(lines) + "\n")
    avi = _touch(tmp_path / "Video" / "session1" / "S01A" / "P" / f"{utts[0]}.avi")
    cp = CorpusParams(
        adapter="msp_improv",
        root=str(tmp_path),
        landmarks_dir="lm",
        textgrid_dir="tg",
        labels="consensus",
        split_by="session",
    )
    assert _videos(cp) == {utts[0]: str(avi), utts[1]: ""}


def test_manifest_adapter_resolves_the_optional_video_column(tmp_path: Path) -> None:
    _touch(tmp_path / "a.wav")
    _touch(tmp_path / "b.wav")
    csv = _touch(
        tmp_path / "m.csv",
        "utt_id,speaker,emotion,audio,video\nu1,s1,anger,a.wav,clips/u1.avi\nu2,s2,sad,b.wav,\n",
    )
    cp = CorpusParams(
        adapter="manifest",
        root=str(tmp_path),
        landmarks_dir="lm",
        textgrid_dir="tg",
        manifest_csv=str(csv),
    )
    assert _videos(cp) == {"u1": str(tmp_path / "clips" / "u1.avi"), "u2": ""}


def test_manifests_written_before_the_video_column_read_with_an_empty_one(tmp_path: Path) -> None:
    old = (
        "utt_id,corpus,speaker,gender,session,sentence,emotion,split,audio,landmarks,"
        "textgrid,transcript\nu1,c,1001,F,,IEO,anger,train,a.wav,a.csv,a.TextGrid,hi\n"
    )
    frame = read_manifest(_touch(tmp_path / "manifest.csv", old))
    assert list(frame.columns[8:10]) == ["audio", "video"] and frame["video"].tolist() == [""]
