"""The demo corpus generator: determinism, the two file layouts, and the simulated signal."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view
from praatio import textgrid

from agcc.demo import generate_corpus
from agcc.demo.corpus import plan_crema, plan_improv
from agcc.demo.labels import crema_votes
from agcc.demo.lexicon import CREMA_SENTENCES, IMPROV_SENTENCES, pronounce
from agcc.demo.synth import formant_tracks
from agcc.params import DemoCorpusSize
from agcc.phones import words_of

SEED = 13
TINY = DemoCorpusSize(n_speakers=2, utts_per_speaker=4)
XY = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
CREMA_RE = re.compile(
    rf"(\d{{4}})_({'|'.join(CREMA_SENTENCES)})_(ANG|HAP|SAD|NEU|DIS|FEA)_(LO|MD|HI|XX)"
)
IMPROV_RE = re.compile(r"MSP-IMPROV-S(\d{2})([AHSN])-([FM])0(\d)-([RSP])-(FM|MF)(\d{2})")
EVAL_HEADER_RE = re.compile(
    r"UTD-IMPROV-(\S+)\.avi; ([AHSNOX]); A:[\d.]+; V:[\d.]+; D:[\d.]+ ; N:(\d+);"
)
RATER_RE = re.compile(
    r"rater\d{2}; (Angry|Happy|Sad|Neutral|Other); [A-Za-z]+; A:[\d.]+; V:[\d.]+; D:[\d.]+;"
)
IPA_PHONES = set(
    "ɑ ɑː ə ʌ ɛ i iː æ u uː ɪ ʊ ɔ ɝ ɚ aj aw ej ow ɔj "
    "p b t d k ɡ f v θ ð s z ʃ ʒ h m n ŋ l ɹ j w tʃ dʒ".split()
)
VOWEL_OF = {"AA": "AA", "ɑ": "AA", "ɑː": "AA", "IY": "IY", "i": "IY", "iː": "IY"}
VOWEL_OF |= {"UW": "UW", "u": "UW", "uː": "UW"}


@pytest.fixture(scope="module")
def crema(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A small demo_crema with a large DIS/FEA share so both appear."""
    out = tmp_path_factory.mktemp("crema") / "demo_crema"
    size = DemoCorpusSize(n_speakers=2, utts_per_speaker=8)
    return out, generate_corpus("crema", size, out, SEED, 0.2)


@pytest.fixture(scope="module")
def improv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A small demo_improv: two sessions, 32 utterances."""
    out = tmp_path_factory.mktemp("improv") / "demo_improv"
    size = DemoCorpusSize(n_speakers=4, utts_per_speaker=8)
    return out, generate_corpus("improv", size, out, SEED, 0.05)


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _first_line(path: Path) -> str:
    """The first line of a text file, without its newline."""
    with path.open(encoding="utf-8") as f:
        return f.readline().rstrip("\n")


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["crema", "improv"])
def test_same_seed_gives_identical_bytes_and_other_seed_differs(kind: str, tmp_path: Path) -> None:
    a = _snapshot_of(kind, tmp_path / "a", SEED)
    b = _snapshot_of(kind, tmp_path / "b", SEED)
    c = _snapshot_of(kind, tmp_path / "c", SEED + 1)
    assert a.keys() == b.keys()
    differing = [k for k in a if a[k] != b[k]]
    assert differing == []
    wavs = [k for k in a if k.endswith(".wav")]
    assert len(wavs) >= 8  # plus a DIS/FEA clip for crema
    assert set(wavs) <= c.keys()  # names come from the plan, not from the seed
    assert all(a[k] != c[k] for k in wavs)
    assert any(k.endswith(".TextGrid") for k in a) and any(k.endswith(".csv") for k in a)


def _snapshot_of(kind: str, out: Path, seed: int, workers: int = 1) -> dict[str, bytes]:
    """Generate a tiny corpus and return its files."""
    generate_corpus(kind, TINY, out, seed, 0.1, workers=workers)
    return _snapshot(out)


def test_parallel_build_equals_serial(tmp_path: Path) -> None:
    serial = _snapshot_of("improv", tmp_path / "serial", SEED)
    parallel = _snapshot_of("improv", tmp_path / "parallel", SEED, workers=2)
    assert serial == parallel


def test_rerun_replaces_a_demo_folder_but_refuses_a_foreign_one(tmp_path: Path) -> None:
    out = tmp_path / "demo_crema"
    generate_corpus("crema", TINY, out, SEED, 0.0)
    (out / "stale.txt").write_text("old")
    generate_corpus("crema", TINY, out, SEED, 0.0)
    assert not (out / "stale.txt").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="refusing to replace"):
        generate_corpus("crema", TINY, foreign, SEED, 0.0)
    assert (foreign / "thesis.tex").read_text() == "precious"


# --- planning and labels ------------------------------------------------------------------------


def test_demo_sentences_tokenise_as_the_aligner_reads_transcripts() -> None:
    """The demo lexicon uses the aligner's words_of; on every demo sentence it gives the
    whitespace words without sentence punctuation (the demo's former rule gave the same)."""
    for text in [*CREMA_SENTENCES.values(), *IMPROV_SENTENCES.values()]:
        plain = [w.strip(".,?!") for w in text.lower().split()]
        assert words_of(text) == plain, text
        assert [w for w, _ in pronounce(text)] == plain


def test_crema_plan_is_balanced_per_actor() -> None:
    plans = plan_crema(DemoCorpusSize(n_speakers=16, utts_per_speaker=48), 0.05)
    assert len({p.utt_id for p in plans}) == len(plans)
    four = [p for p in plans if p.code in ("NEU", "ANG", "HAP", "SAD")]
    for s in range(16):
        mine = [(p.sentence, p.emotion) for p in four if p.speaker == s]
        assert len(set(mine)) == 48  # each sentence once in each emotion
    other = len(plans) - len(four)
    assert abs(other / len(plans) - 0.05) < 0.005
    for p in plans:
        assert (p.level != "XX") == (p.sentence == "IEO" and p.code != "NEU")


def test_crema_plan_rejects_more_clips_than_the_layout_allows() -> None:
    with pytest.raises(ValueError, match="utts_per_speaker must be <= 48"):
        plan_crema(DemoCorpusSize(n_speakers=2, utts_per_speaker=49), 0.0)


def test_improv_plan_sessions_and_balance() -> None:
    plans = plan_improv(DemoCorpusSize(n_speakers=12, utts_per_speaker=48))
    assert len({p.utt_id for p in plans}) == len(plans) == 576
    speakers = Counter(IMPROV_RE.fullmatch(p.utt_id).group(3, 4) for p in plans)
    assert set(speakers) == {(g, str(n)) for g in "FM" for n in range(1, 7)}
    for s in range(12):
        assert Counter(p.code for p in plans if p.speaker == s) == dict.fromkeys("NAHS", 12)


def test_crema_votes_mostly_agree_and_ties_are_sorted() -> None:
    rng = np.random.default_rng(0)
    votes = [crema_votes("anger", 1.0, rng) for _ in range(3000)]
    agree = np.mean([v["VoiceVote"] == "A" for v in votes])
    assert 0.72 < agree < 0.9
    ties = [v for v in votes if ":" in v["MultiModalVote"]]
    assert ties, "expected some tied votes"
    for v in ties:
        letters = v["MultiModalVote"].split(":")
        assert letters == sorted(letters) and len(v["MultiModalLevel"].split(":")) == 2


def test_formants_follow_the_mouth() -> None:
    base = np.array([[0.4, 0.3, 0.2, 0.0, 0.5, 0.0]])

    def f(**change: float) -> np.ndarray:
        """Formants (4,) of the base mouth with some dimensions changed."""
        a = base.copy()
        for k, v in change.items():
            a[0, ["jaw", "spread", "round"].index(k)] = v
        return formant_tracks(a, np.zeros(1), 1.0)[0][0]

    assert f(jaw=0.8)[0] > f(jaw=0.2)[0] + 200  # opening raises F1
    assert f(spread=0.9)[1] > f(spread=0.0)[1] + 200  # spreading raises F2
    assert np.all(f(round=0.9) < f(round=0.0))  # rounding lowers all formants


# --- CREMA-D layout ---------------------------------------------------------------------------


def test_crema_wav_names_and_format(crema: tuple[Path, pd.DataFrame]) -> None:
    root, truth = crema
    wavs = sorted((root / "AudioWAV").glob("*.wav"))
    assert len(wavs) == len(truth) == 20
    emotions = Counter()
    for wav in wavs:
        m = CREMA_RE.fullmatch(wav.stem)
        assert m, wav.name
        emotions[m.group(3)] += 1
        assert m.group(3) != "NEU" or m.group(4) == "XX"
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.5 <= info.duration <= 4.0
    assert emotions["DIS"] + emotions["FEA"] == 4
    assert all(emotions[e] == 4 for e in ("ANG", "HAP", "SAD", "NEU"))


def test_crema_label_files(crema: tuple[Path, pd.DataFrame]) -> None:
    root, _ = crema
    stems = {p.stem for p in (root / "AudioWAV").glob("*.wav")}
    lines = (root / "summaryTable.csv").read_text().splitlines()
    assert lines[0] == (
        '"","FileName","VoiceVote","VoiceLevel","FaceVote","FaceLevel",'
        '"MultiModalVote","MultiModalLevel"'
    )
    vote, level = r'"[ADFHNS](?::[ADFHNS])?"', r'"\d+(?:\.\d+)?(?::\d+(?:\.\d+)?)?"'
    row_re = re.compile(rf'"(\d+)","([^"]+)",{vote},{level},{vote},{level},{vote},{level}')
    rows = [row_re.fullmatch(line) for line in lines[1:]]
    assert all(rows), [line for line, r in zip(lines[1:], rows, strict=True) if not r]
    assert [int(r.group(1)) for r in rows] == list(range(1, len(rows) + 1))
    assert {r.group(2) for r in rows} == stems
    demo = (root / "VideoDemographics.csv").read_text().splitlines()
    assert demo[0] == '"ActorID","Age","Sex","Race","Ethnicity"'
    assert all(re.fullmatch(r'\d{4},\d+,"(Male|Female)","[^"]+","[^"]+"', d) for d in demo[1:])
    assert {d.split(",")[0] for d in demo[1:]} == {s[:4] for s in stems}


def _openface_table(root: Path, row: object, header: str, fps: float) -> pd.DataFrame:
    """An utterance's OpenFace CSV, checked for its header, frame count and timestamps."""
    path = root / "openface" / f"{row.utt_id}.csv"
    assert _first_line(path) == header
    table = pd.read_csv(path, skipinitialspace=True)
    frames = table["frame"].to_numpy()
    assert len(frames) == int(np.floor(row.duration_s * fps))
    np.testing.assert_allclose(table["timestamp"], np.round((frames - 1) / fps, 3), atol=1e-9)
    return table


def test_crema_openface_layout_30fps(crema: tuple[Path, pd.DataFrame]) -> None:
    root, truth = crema
    header = "frame, face_id, timestamp, confidence, success, " + ", ".join(XY)
    for row in truth.itertuples():
        table = _openface_table(root, row, header, 30.0)
        assert table["frame"].iloc[0] == 1 and np.all(np.diff(table["frame"]) == 1)
        assert set(table["success"]) <= {0, 1} and (table["face_id"] == 0).all()
    fail = truth["n_failed_frames"].sum() / truth["n_frames"].sum()
    assert 0.0 < fail < 0.1


def test_crema_textgrids_arpabet(crema: tuple[Path, pd.DataFrame]) -> None:
    root, truth = crema
    for row in truth.itertuples():
        tg = textgrid.openTextgrid(
            str(root / "textgrids" / f"{row.utt_id}.TextGrid"), includeEmptyIntervals=True
        )
        assert tg.tierNames == ("words", "phones")
        n_samples = sf.info(root / row.wav).frames
        assert tg.maxTimestamp == pytest.approx(n_samples / 16000)
        words = [e.label for e in tg.getTier("words").entries if e.label]
        assert words == words_of(CREMA_SENTENCES[row.sentence])
        phones = [e.label for e in tg.getTier("phones").entries]
        assert phones[0] == "" and phones[-1] == ""  # leading / trailing silence
        spoken = [p for p in phones if p]
        assert all(re.fullmatch(r"[A-Z]{1,2}[012]?", p) for p in spoken), spoken
        assert any(p[-1] in "012" for p in spoken)


# --- MSP-IMPROV layout ------------------------------------------------------------------------


def test_improv_names_paths_and_audio(improv: tuple[Path, pd.DataFrame]) -> None:
    root, truth = improv
    wavs = sorted((root / "Audio").rglob("*.wav"))
    assert len(wavs) == len(truth) == 32
    for wav in wavs:
        m = IMPROV_RE.fullmatch(wav.stem)
        assert m, wav.name
        ss, e, _, n, c = m.group(1, 2, 3, 4, 5)
        assert wav.relative_to(root).parts[:-1] == ("Audio", f"session{n}", f"S{ss}{e}", c)
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        text = (root / "transcripts" / f"{wav.stem}.txt").read_text().strip()
        assert text == IMPROV_SENTENCES[f"S{ss}"]


def test_improv_evaluation_joins_and_agrees_with_raters(improv: tuple[Path, pd.DataFrame]) -> None:
    root, _ = improv
    blocks = (root / "Evaluation.txt").read_text().split("\n\n")
    assert blocks[-1] == ""
    joined = set()
    for block in blocks[:-1]:
        header, *raters = block.strip("\n").split("\n")
        m = EVAL_HEADER_RE.fullmatch(header)
        assert m, header
        assert len(raters) == int(m.group(3))
        votes = Counter(RATER_RE.fullmatch(r).group(1)[0] for r in raters)
        top, count = votes.most_common(1)[0]
        if m.group(2) == "X":
            assert count <= len(raters) / 2
        else:
            assert (top, count > len(raters) / 2) == (m.group(2), True)
        joined.add("MSP-IMPROV-" + m.group(1))
    assert joined == {p.stem for p in (root / "Audio").rglob("*.wav")}


def test_improv_openface_layout_2997fps_and_ipa_textgrids(
    improv: tuple[Path, pd.DataFrame],
) -> None:
    root, truth = improv
    header = "frame, timestamp, confidence, success, " + ", ".join(XY)
    for row in truth.itertuples():
        _openface_table(root, row, header, 29.97)
        tg = textgrid.openTextgrid(
            str(root / "textgrids" / f"{row.utt_id}.TextGrid"), includeEmptyIntervals=False
        )
        phones = {e.label for e in tg.getTier("phones").entries}
        assert phones <= IPA_PHONES, phones - IPA_PHONES


# --- the signal is in the data ----------------------------------------------------------------


def _mouth_track(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times, mouth opening (51-57) and width (48-54) over eye distance of the usable frames."""
    table = pd.read_csv(path, skipinitialspace=True)
    table = table[(table["success"] == 1) & (table["confidence"] >= 0.5)]
    x, y = table[XY[:68]].to_numpy(), table[XY[68:]].to_numpy()  # (F, 68) each

    def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-frame distance between the centroids of point sets ``a`` and ``b``."""
        return np.hypot(x[:, a].mean(1) - x[:, b].mean(1), y[:, a].mean(1) - y[:, b].mean(1))

    eyes = dist(np.arange(36, 42), np.arange(42, 48))
    return table["timestamp"].to_numpy(), dist([57], [51]) / eyes, dist([54], [48]) / eyes


def _mouth_by_vowel(root: Path, truth: pd.DataFrame) -> dict[str, dict[str, list[float]]]:
    """Mean mouth opening and width per vowel token (AA, IY, UW), from CSVs and TextGrids."""
    out: dict[str, dict[str, list[float]]] = {
        v: {"open": [], "width": []} for v in VOWEL_OF.values()
    }
    for row in truth.itertuples():
        t, opening, width = _mouth_track(root / row.landmarks)
        path = root / "textgrids" / f"{row.utt_id}.TextGrid"
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
        for e in tg.getTier("phones").entries:
            vowel = VOWEL_OF.get(e.label.rstrip("012"))
            inside = (t >= e.start) & (t < e.end)
            if vowel and inside.any():
                out[vowel]["open"].append(opening[inside].mean())
                out[vowel]["width"].append(width[inside].mean())
    return out


@pytest.mark.parametrize("corpus", ["crema", "improv"])
def test_mouth_landmarks_carry_the_vowels(corpus: str, request: pytest.FixtureRequest) -> None:
    root, truth = request.getfixturevalue(corpus)
    m = _mouth_by_vowel(root, truth)
    assert len(m["AA"]["open"]) >= 3 and len(m["IY"]["open"]) >= 3
    assert np.mean(m["AA"]["open"]) > np.mean(m["IY"]["open"]) + 0.1
    if corpus == "improv":  # the CREMA-D sentences have too few UW for a tiny corpus
        assert len(m["UW"]["width"]) >= 3
        assert np.mean(m["IY"]["width"]) > np.mean(m["UW"]["width"]) + 0.15


def _crude_f0(x: np.ndarray, sr: int) -> float:
    """Median autocorrelation f0 (60-400 Hz) over the loudest 40 ms frames."""
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    frames = sliding_window_view(x, frame)[::hop]  # (F, frame)
    energy = (frames**2).mean(axis=1)
    frames = frames[energy > 0.1 * energy.max()]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, 2 * frame, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :frame]  # (F, frame)
    lo, hi = sr // 400, sr // 60
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    return float(np.median(sr / lag))


def test_anger_is_louder_and_higher_than_sadness(improv: tuple[Path, pd.DataFrame]) -> None:
    root, truth = improv
    rms_db, f0 = [], []
    for row in truth.itertuples():
        x, sr = sf.read(root / row.wav)
        speech = x[int(row.speech_start_s * sr) : int(row.speech_end_s * sr)]
        rms_db.append(20 * np.log10(np.sqrt(np.mean(speech**2))))
        f0.append(_crude_f0(speech, sr))
    table = truth.assign(rms_db=rms_db, f0=f0)
    by = table.groupby("emotion")[["rms_db", "f0"]].mean()
    assert by.loc["anger", "rms_db"] > by.loc["sadness", "rms_db"] + 5
    assert by.loc["anger", "f0"] > 1.2 * by.loc["sadness", "f0"]
    assert np.corrcoef(table["f0"], table["f0_mean_hz"])[0, 1] > 0.8
