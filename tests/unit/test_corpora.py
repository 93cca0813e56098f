"""Corpus adapters on small hand-made trees: labels, joins, side-file lookup and bad input."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

from agcc.corpora import LayoutError, build_manifest
from agcc.corpora.base import Absent
from agcc.corpora.crema_d import SENTENCES, parse_name
from agcc.corpora.msp_improv import parse_header
from agcc.errors import DataError
from agcc.io.manifest import MANIFEST_COLUMNS
from agcc.params import CorpusParams
from agcc.skips import SkipReport

SUMMARY_HEADER = (
    '"","FileName","VoiceVote","VoiceLevel","FaceVote","FaceLevel","MultiModalVote",'
    '"MultiModalLevel"'
)


def _touch(path: Path, text: str = "") -> Path:
    """Create a file (and its folders) with the given text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _crema(root: Path, names: list[str], votes: dict[str, tuple[str, str]] | None = None) -> None:
    """A CREMA-D tree: empty AudioWAV files, demographics, and a summaryTable of (voice, mm)."""
    for n in names:
        _touch(root / "AudioWAV" / f"{n}.wav")
    _touch(
        root / "VideoDemographics.csv",
        '"ActorID","Age","Sex","Race","Ethnicity"\n1001,51,"Male","Caucasian","Not Hispanic"\n'
        '1002,21,"Female","Asian","Not Hispanic"\n',
    )
    lines = [SUMMARY_HEADER] + [
        f'"{i}","{n}","{v}","60","N","70","{m}","55"'
        for i, (n, (v, m)) in enumerate((votes or {}).items(), start=1)
    ]
    _touch(root / "summaryTable.csv", "\n".join(lines) + "\n")


def _cp(root: Path, adapter: str = "crema_d", **kw: str) -> CorpusParams:
    """Corpus settings with relative-looking side folders below the root."""
    sessions = {"split_by": "session", "labels": "consensus"} if adapter == "msp_improv" else {}
    return CorpusParams(
        adapter=adapter,
        root=str(root),
        landmarks_dir=str(root / "openface"),
        textgrid_dir=str(root / "textgrids"),
        **(sessions | kw),
    )


def _build(cp: CorpusParams) -> tuple:
    """build_manifest with a fresh skip report; returns (manifest, skips)."""
    skips = SkipReport("prepare@test")
    return build_manifest("c", cp, skips), skips


CREMA_NAMES = [
    f"{a}_{s}_{e}_XX"
    for a in ("1001", "1002")
    for s in ("DFA", "IEO")
    for e in ("ANG", "HAP", "SAD", "NEU", "DIS", "FEA")
]


def test_parse_crema_name() -> None:
    assert parse_name("1076_MTI_SAD_XX") == ("1076", "MTI", "SAD")
    for bad, why in [
        ("1001_DFA_ANG", "does not parse"),
        ("1001_XYZ_ANG_XX", "sentence"),
        ("1001_DFA_SUR_XX", "emotion"),
        ("1001_DFA_ANG_ZZ", "level"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_name(bad)


def test_crema_intended_labels_from_file_names(tmp_path: Path) -> None:
    _crema(tmp_path, CREMA_NAMES)
    (m, skips) = _build(_cp(tmp_path))
    f = m.frame
    assert tuple(f.columns) == MANIFEST_COLUMNS
    assert len(f) == 16 and skips.n_skipped == 0
    assert Counter(f["emotion"]) == dict.fromkeys(("anger", "happiness", "sadness", "neutral"), 4)
    assert m.dropped == {"disgust": 4, "fear": 4}
    assert m.n_seen == 24
    row = f.set_index("utt_id").loc["1002_IEO_HAP_XX"]
    assert (row.speaker, row.gender, row.session, row.sentence) == ("1002", "F", "", "IEO")
    assert row.transcript == SENTENCES["IEO"] == "It's eleven o'clock"
    assert row.audio == str(tmp_path / "AudioWAV" / "1002_IEO_HAP_XX.wav")
    assert set(f["corpus"]) == {"c"} and set(f["split"]) == {""}


def test_crema_voice_votes_ties_and_joins(tmp_path: Path) -> None:
    names = [
        "1001_DFA_ANG_XX",
        "1001_DFA_HAP_XX",
        "1001_DFA_SAD_XX",
        "1001_DFA_NEU_XX",
        "1001_IEO_ANG_XX",
    ]
    votes = {
        "1001_DFA_ANG_XX": ("N:S", "A"),
        "1001_DFA_HAP_XX": ("H", "H"),
        "1001_DFA_SAD_XX": ("F", "S"),
        "1001_DFA_NEU_XX": ("Q", "N"),
        "1001_TIE_ANG_XX": ("A", "A"),
    }
    _crema(tmp_path, names, votes)
    m, skips = _build(_cp(tmp_path, labels="voice"))
    assert dict(zip(m.frame["utt_id"], m.frame["emotion"], strict=True)) == {
        "1001_DFA_HAP_XX": "happiness"
    }
    assert m.dropped == {"no consensus": 1, "fear": 1}
    reasons = {s.item: s.reason for s in skips.skips}
    assert "unknown VoiceVote 'Q'" in reasons["1001_DFA_NEU_XX"]
    assert "1001_TIE_ANG_XX" not in reasons  # a label row of a clip not on disk: absent
    assert reasons["1001_IEO_ANG_XX"].startswith("no label")
    assert m.n_seen == 1 + 2 + 2
    assert m.absent.counts == {
        f"summaryTable.csv rows of clips not in {tmp_path / 'AudioWAV'}": 1,
        "audio-only clips: no video at "
        f"{tmp_path / 'VideoFlash' / '<clip>.flv'} and no landmark CSV below "
        f"{tmp_path / 'openface'}": 1,
    }
    mm, _ = _build(_cp(tmp_path, labels="multimodal"))
    assert Counter(mm.frame["emotion"]) == {"anger": 1, "happiness": 1, "sadness": 1, "neutral": 1}


def test_crema_unreadable_summary_table_is_a_skip_and_leaves_clips_unlabelled(
    tmp_path: Path,
) -> None:
    _crema(tmp_path, ["1001_DFA_ANG_XX", "1001_DFA_HAP_XX"])
    _touch(tmp_path / "summaryTable.csv", '"FileName","Vote"\n"1001_DFA_ANG_XX","A"\n')
    m, skips = _build(_cp(tmp_path, labels="voice"))
    assert m.frame.empty and tuple(m.frame.columns) == MANIFEST_COLUMNS
    first = skips.skips[0]
    assert first.item == "summaryTable.csv" and "missing columns ['VoiceVote']" in first.reason
    assert [s.reason.split(":")[0] for s in skips.skips[1:]] == ["no label", "no label"]
    assert m.n_seen == 3


def test_crema_voice_labels_need_the_summary_table(tmp_path: Path) -> None:
    _crema(tmp_path, ["1001_DFA_ANG_XX"])
    (tmp_path / "summaryTable.csv").unlink()
    with pytest.raises(LayoutError, match=r"labels='voice' needs .*summaryTable\.csv"):
        _build(_cp(tmp_path, labels="voice"))
    assert len(_build(_cp(tmp_path))[0].frame) == 1  # intended labels do not need it


def test_crema_unparseable_wav_is_a_skip_naming_the_file(tmp_path: Path) -> None:
    _crema(tmp_path, ["1001_DFA_ANG_XX", "1001_DFA_ANG", "1001_XYZ_HAP_XX"])
    _touch(tmp_path / "AudioWAV" / "notes.txt")  # not a wav: ignored, not a skip
    m, skips = _build(_cp(tmp_path))
    assert list(m.frame["utt_id"]) == ["1001_DFA_ANG_XX"]
    by_item = {s.item: s for s in skips.skips}
    assert set(by_item) == {"1001_DFA_ANG", "1001_XYZ_HAP_XX"}
    assert by_item["1001_DFA_ANG"].path.endswith("AudioWAV/1001_DFA_ANG.wav")
    assert by_item["1001_XYZ_HAP_XX"].reason.startswith("file name does not parse")
    assert "'XYZ'" in by_item["1001_XYZ_HAP_XX"].reason


@pytest.mark.parametrize("adapter", ["crema_d", "msp_improv"])
def test_root_not_in_the_named_layout_is_an_error(tmp_path: Path, adapter: str) -> None:
    _touch(tmp_path / "some" / "clip.wav")
    with pytest.raises(ValueError, match=str(tmp_path)) as err:
        _build(_cp(tmp_path, adapter))
    assert isinstance(err.value, LayoutError)
    assert ("AudioWAV" if adapter == "crema_d" else "Evaluation.txt") in str(err.value)


def test_crema_audio_folder_without_crema_names_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path / "AudioWAV" / "speech.wav")
    with pytest.raises(LayoutError, match=r"none of the 1 \.wav files .*AAAA_SSS_EEE_LL"):
        _build(_cp(tmp_path))


def test_side_files_found_in_nested_folders_else_flat_expected_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _crema(tmp_path, ["1001_DFA_ANG_XX", "1001_DFA_HAP_XX", "1001_DFA_SAD_XX"])
    _touch(tmp_path / "VideoFlash" / "1001_DFA_HAP_XX.flv")  # a video but no CSV yet
    of = tmp_path / "openface"
    nested = _touch(of / "actor1001" / "run2" / "1001_DFA_ANG_XX.csv")
    _touch(of / "1001_DFA_ANG_XX_of_details.txt")
    flat = _touch(of / "1001_DFA_SAD_XX.csv")
    _touch(of / "a" / "1001_DFA_SAD_XX.csv")  # a second copy deeper down loses
    with caplog.at_level(logging.WARNING):
        m, _ = _build(_cp(tmp_path))
    lm = dict(zip(m.frame["utt_id"], m.frame["landmarks"], strict=True))
    assert lm["1001_DFA_ANG_XX"] == str(nested)
    assert lm["1001_DFA_SAD_XX"] == str(flat)
    assert lm["1001_DFA_HAP_XX"] == str(of / "1001_DFA_HAP_XX.csv")
    tg = dict(zip(m.frame["utt_id"], m.frame["textgrid"], strict=True))
    assert tg["1001_DFA_ANG_XX"] == str(tmp_path / "textgrids" / "1001_DFA_ANG_XX.TextGrid")
    assert "TextGrid folder" in caplog.text and "does not exist" in caplog.text
    assert "landmark folder" not in caplog.text
    assert "1 .csv files share a stem" in caplog.text


def test_paths_stay_relative_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _crema(Path("data/crema"), ["1001_DFA_ANG_XX"])
    _touch(Path("data/crema/VideoFlash/1001_DFA_ANG_XX.flv"))
    cp = CorpusParams(
        adapter="crema_d", root="data/crema", landmarks_dir="work/of", textgrid_dir="work/tg"
    )
    row = _build(cp)[0].frame.iloc[0]
    assert row.audio == "data/crema/AudioWAV/1001_DFA_ANG_XX.wav"
    assert (row.landmarks, row.textgrid) == (
        "work/of/1001_DFA_ANG_XX.csv",
        "work/tg/1001_DFA_ANG_XX.TextGrid",
    )


# --- MSP-IMPROV ------------------------------------------------------------------------------

EVALUATION = """\
UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:4.0; V:2.0; D:3.5 ; N:5;
rater03; Angry; Frustrated; A:4.0; V:2.0; D:4.0;
rater07; Angry; ; A:4.5; V:1.5; D:3.0;

UTD-IMPROV-S02H-M01-R-MF02.avi; H; A:3.0; V:4.5; D:3.0; N:5;
rater01; Happy; ; A:3.0; V:4.5; D:3.0;

UTD-IMPROV-S03S-F02-S-FM03.avi; O; A:2.0; V:2.0; D:2.0; N:5;

UTD-IMPROV-S04N-M02-P-MF04.avi; X; A:3.0; V:3.0; D:3.0; N:5;

UTD-IMPROV-S05S-F03-P-FM05.avi; S; A:1.5; V:1.5; D:2.0; N:4;

UTD-IMPROV-S06N-M03-P-MF06.avi N A:3.0 V:3.0

UTD-IMPROV-S07A-F03-P-FM07.avi; A; A:4.0; V:2.0; D:3.5; N:5;
"""
MSP_AUDIO = [
    "MSP-IMPROV-S01A-F01-P-FM01",
    "MSP-IMPROV-S02H-M01-R-MF02",
    "MSP-IMPROV-S03S-F02-S-FM03",
    "MSP-IMPROV-S04N-M02-P-MF04",
    "MSP-IMPROV-S05S-F03-P-FM05",
    "MSP-IMPROV-S08N-M03-P-MF08",  # no Evaluation.txt entry
]


def _msp(root: Path, label_file: str = "Evaluation.txt") -> None:
    """A small MSP-IMPROV tree with audio in the release's nested folders."""
    for utt in MSP_AUDIO:
        session, sent = int(utt[17:19]), utt[11:15]
        _touch(root / "Audio" / f"session{session}" / sent / utt[20] / f"{utt}.wav")
    _touch(root / "Audio" / "session1" / "S09A" / "P" / "MSP-IMPROV-S09A-F1-P-FM01.wav")
    _touch(root / label_file, EVALUATION)
    _touch(root / "transcripts" / "MSP-IMPROV-S01A-F01-P-FM01.txt", "  I told you\nalready \n")


def test_parse_msp_header() -> None:
    line = "UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:4.0; V:2.0; D:3.5 ; N:5;"
    assert parse_header(line) == ("MSP-IMPROV-S01A-F01-P-FM01", "anger")
    assert parse_header("MSP-IMPROV-S01A-F01-P-FM01; X;")[1] == "no agreement (X)"
    for bad in [
        "UTD-IMPROV-S01A-F01-P-FM01.avi; Q; A:1;",
        "UTD-IMPROV-S1A-F01.avi; A;",
        "UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:high;",
    ]:
        with pytest.raises(ValueError):
            parse_header(bad)


@pytest.mark.parametrize("label_file", ["Evaluation.txt", "Evalution.txt"])
def test_msp_improv_consensus_labels(tmp_path: Path, label_file: str) -> None:
    _msp(tmp_path, label_file)
    m, skips = _build(_cp(tmp_path, "msp_improv"))
    f = m.frame.set_index("utt_id")
    assert list(f.index) == [MSP_AUDIO[0], MSP_AUDIO[1], MSP_AUDIO[4]]
    assert list(f["emotion"]) == ["anger", "happiness", "sadness"]
    assert list(f["speaker"]) == ["F01", "M01", "F03"]
    assert list(f["session"]) == ["1", "1", "3"]
    assert list(f["gender"]) == ["F", "M", "F"]
    assert list(f["sentence"]) == ["S01", "S02", "S05"]
    assert list(f["transcript"]) == ["I told you already", "", ""]
    assert f.loc[MSP_AUDIO[4], "audio"].endswith(f"Audio/session3/S05S/P/{MSP_AUDIO[4]}.wav")
    assert m.dropped == {"other (O)": 1, "no agreement (X)": 1}
    assert m.n_seen == 3 + 2 + skips.n_skipped


def test_msp_improv_bad_input_is_skipped_with_file_and_line(tmp_path: Path) -> None:
    _msp(tmp_path)
    _, skips = _build(_cp(tmp_path, "msp_improv"))
    by_item = {s.item: s for s in skips.skips}
    bad_line = by_item["Evaluation.txt:14"]  # the header without semicolons
    assert bad_line.path == f"{tmp_path / 'Evaluation.txt'}:14"
    assert bad_line.reason.startswith("label line does not parse")
    assert "MSP-IMPROV-S07A-F03-P-FM07" not in by_item  # a label without audio: absent
    assert by_item["MSP-IMPROV-S08N-M03-P-MF08"].reason.startswith("no label")
    assert by_item["MSP-IMPROV-S09A-F1-P-FM01"].reason.startswith("file name does not parse")
    assert skips.n_skipped == 3


def test_msp_improv_bad_label_line_is_one_skip_not_two(tmp_path: Path) -> None:
    _msp(tmp_path)
    _touch(tmp_path / "Audio" / "session3" / "S06N" / "P" / "MSP-IMPROV-S06N-M03-P-MF06.wav")
    m, skips = _build(_cp(tmp_path, "msp_improv"))
    items = [s.item for s in skips.skips]
    assert "Evaluation.txt:14" in items  # the bad header line of S06N
    assert "MSP-IMPROV-S06N-M03-P-MF06" not in items  # its audio is not a second skip
    assert "MSP-IMPROV-S06N-M03-P-MF06" not in set(m.frame["utt_id"])
    (line,) = m.absent.lines()[:1]
    assert line.startswith("1 Evaluation.txt entries of utterances without a wav")
    assert line.endswith("MSP-IMPROV-S07A-F03-P-FM07")


def test_msp_improv_root_without_wavs_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path / "Evaluation.txt", EVALUATION)
    _touch(tmp_path / "Audio" / "other.wav")
    with pytest.raises(LayoutError, match=r"none of the 0 MSP-IMPROV-\*\.wav"):
        _build(_cp(tmp_path, "msp_improv"))


# --- generic manifest CSV ----------------------------------------------------------------------


def test_manifest_csv_paths_codes_and_drops(tmp_path: Path) -> None:
    for n in ("a1", "a2", "a3", "a4", "a5"):
        _touch(tmp_path / "corpus" / "wav" / f"{n}.wav")
    absolute = _touch(tmp_path / "elsewhere" / "a6.wav")
    _touch(
        tmp_path / "corpus" / "list.csv",
        "utt_id,speaker,emotion,audio,session,landmarks,notes\n"
        "a1,s1,ANG,wav/a1.wav,1,of/a1.csv,x\n"
        "a2,s1, Happy ,wav/a2.wav,1,,x\n"
        "a3,s2,fru,wav/a3.wav,2,,x\n"
        "a4,s2,,wav/a4.wav,2,,x\n"
        "a5,s3,n,wav/missing.wav,3,,x\n"
        f"a6,s3,sad,{absolute},3,,x\n"
        "a1,s3,sad,wav/a1.wav,3,,x\n",
    )
    cp = _cp(tmp_path, "manifest", manifest_csv=str(tmp_path / "corpus" / "list.csv"))
    m, skips = _build(cp)
    f = m.frame.set_index("utt_id")
    assert dict(f["emotion"]) == {"a1": "anger", "a2": "happiness", "a6": "sadness"}
    assert f.loc["a1", "audio"] == str(tmp_path / "corpus" / "wav" / "a1.wav")
    assert f.loc["a6", "audio"] == str(absolute)
    assert f.loc["a1", "landmarks"] == str(tmp_path / "corpus" / "of" / "a1.csv")
    assert f.loc["a2", "landmarks"] == ""  # no video, no CSV: audio-only by design
    assert sum(m.absent.counts.values()) == 2  # a2 and a6
    assert f.loc["a2", "session"] == "1" and f.loc["a2", "gender"] == ""
    assert m.dropped == {"fru": 1}
    reasons = sorted(s.reason.split(":")[0] for s in skips.skips)
    assert reasons == ["duplicate utt_id 'a1'", "label without audio file", "no label"]
    assert any(s.path.endswith("list.csv:6") for s in skips.skips)  # a5 is on line 6


def test_manifest_paths_outside_the_root_are_an_error_unless_allowed(tmp_path: Path) -> None:
    _touch(tmp_path / "corpus" / "wav" / "a1.wav")
    outside = _touch(tmp_path / "other" / "a2.wav")
    _touch(
        tmp_path / "corpus" / "manifest.csv",
        f"utt_id,speaker,emotion,audio\na1,s1,ang,wav/a1.wav\na2,s1,ang,{outside}\n"
        "a3,s1,ang,../other/a2.wav\n",
    )
    cp = _cp(tmp_path / "corpus", "manifest")
    with pytest.raises(DataError, match=r"2 path\(s\) outside the corpus root .*line 3 audio") as e:
        _build(cp)
    assert "allow_outside_root: true" in str(e.value)
    m, _ = _build(_cp(tmp_path / "corpus", "manifest", allow_outside_root=True))
    assert set(m.frame["utt_id"]) == {"a1", "a2", "a3"}


def test_manifest_csv_missing_required_column_is_an_error(tmp_path: Path) -> None:
    csv = _touch(tmp_path / "m.csv", "utt_id,speaker,audio\na1,s1,a1.wav\n")
    with pytest.raises(
        LayoutError, match=r"m\.csv: manifest CSV lacks required column\(s\) \['emotion'\]"
    ):
        _build(_cp(tmp_path, "manifest", manifest_csv=str(csv)))


def test_absent_items_are_one_line_per_reason_with_the_first_names() -> None:
    absent = Absent()
    for i in range(7):
        absent.add("label_without_audio", "summaryTable.csv rows of clips not in AudioWAV", f"c{i}")
    absent.add("audio_only", "audio-only clips: no video at VideoFlash/<clip>.flv", "d0")
    assert absent.lines() == [
        "1 audio-only clips: no video at VideoFlash/<clip>.flv (absent by design, not skips): d0",
        "7 summaryTable.csv rows of clips not in AudioWAV (absent by design, not skips): "
        "c0, c1, c2, c3, c4, ...",
    ]
    assert absent.metrics() == {"absent.label_without_audio": 7, "absent.audio_only": 1}
