"""Acoustic features: audio reading, the 50 frames/s grid, log-mel, a tiny wav2vec2, storage.

Also the Fig. 2 association measures of agcc.analyze, against hand values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from agcc.encoders import (
    HFEncoder,
    LogMelEncoder,
    ModelNotFoundError,
    build_encoder,
    extract,
    hz_to_mel,
    make_batches,
    mel_filterbank,
    mel_to_hz,
    probe,
    save_random_wav2vec2,
    utterance_normalise,
)
from agcc.framing import SAMPLE_RATE, grid_frames, segment_frames
from agcc.io.audio import read_audio
from agcc.io.features import FrameWriter, load_features
from agcc.params import FeatureParams
from agcc.skips import InputError, SkipReport
from agcc.stages.analyze import association, association_counts, mean_max_row_share, row_shares

CPU = torch.device("cpu")


def tone(freq: float, seconds: float, rate: int, amp: float = 0.3) -> np.ndarray:
    """A sine tone (n,) float32."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wave: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Frequency of the largest FFT magnitude."""
    spec = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spec.argmax()])


# --- the frame grid --------------------------------------------------------------------------


def test_grid_frames_rounds_the_duration_in_20ms_frames() -> None:
    assert grid_frames(16000) == 50
    assert grid_frames(16159) == 50  # 50.497 frames
    assert grid_frames(16160) == 51  # 50.5 rounds up
    assert grid_frames(400) == 1


@pytest.mark.parametrize(
    ("start", "end", "n", "expected"),
    [
        (0.1, 0.3, 100, (5, 15)),  # 0.3 * 50 = 15.000000000000002 must not give 16
        (0.1, 0.1, 100, (5, 6)),  # an empty interval still gets its frame
        (0.111, 0.129, 100, (5, 7)),
        (1.98, 2.5, 100, (99, 100)),  # clipped to the utterance
        (2.5, 3.0, 100, (100, 100)),  # beyond the audio: empty
        (-0.01, 0.05, 100, (0, 3)),
    ],
)
def test_segment_frames(start: float, end: float, n: int, expected: tuple[int, int]) -> None:
    s = segment_frames(start, end, n)
    assert (s.start, s.stop) == expected


# --- audio -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [22050, 44100, 16000])
def test_read_audio_resamples_to_16k(tmp_path: Path, rate: int) -> None:
    path = tmp_path / f"t{rate}.wav"
    sf.write(path, tone(440.0, 1.0, rate), rate, subtype="PCM_16")
    wave = read_audio(path)
    assert wave.dtype == np.float32 and abs(len(wave) - SAMPLE_RATE) <= 1
    assert abs(peak_hz(wave) - 440.0) <= 1.0
    assert 0.28 < np.abs(wave).max() < 0.32


def test_read_audio_mixes_channels_to_mono(tmp_path: Path) -> None:
    left = tone(300.0, 0.5, 16000)
    sf.write(tmp_path / "st.wav", np.stack([left, 0.5 * left], axis=1), 16000, subtype="FLOAT")
    assert np.allclose(read_audio(tmp_path / "st.wav"), 0.75 * left, atol=1e-6)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Bad audio files and a word their skip reason must contain."""
    empty = tmp_path / "zero_bytes.wav"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file" * 10)
    sf.write(tmp_path / "no_frames.wav", np.zeros(0, np.float32), 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    nan = tone(200.0, 0.5, 16000)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(tmp_path / "short.wav", tone(200.0, 0.01, 16000), 16000)
    return {
        "zero_bytes": (empty, "unreadable"),
        "garbage": (garbage, "unreadable"),
        "no_frames": (tmp_path / "no_frames.wav", "zero length"),
        "silent": (tmp_path / "silent.wav", "silent"),
        "nan": (tmp_path / "nan.wav", "non-finite"),
        "short": (tmp_path / "short.wav", "too short"),
    }


def test_read_audio_rejects_bad_files_naming_them(tmp_path: Path) -> None:
    for path, word in _bad_files(tmp_path).values():
        with pytest.raises(InputError, match=word) as err:
            read_audio(path)
        assert err.value.path == str(path)


def test_probe_and_extract_skip_bad_audio_and_keep_the_rest(tmp_path: Path) -> None:
    import pandas as pd

    bad = _bad_files(tmp_path)
    sf.write(tmp_path / "ok.wav", tone(500.0, 1.3, 22050), 22050)
    rows = [(name, str(p)) for name, (p, _) in bad.items()] + [("ok", str(tmp_path / "ok.wav"))]
    frame = pd.DataFrame(rows + [("no_path", "")], columns=["utt_id", "audio"])
    skips = SkipReport("features")
    items = probe(frame, skips)
    writer = FrameWriter(tmp_path / "out" / "features.npz")
    stats = extract(items, LogMelEncoder(40, CPU), writer, skips, batch_seconds=10.0)
    writer.close((40,))
    (tmp_path / "out" / "meta.json").write_text(json.dumps({"dim": 40}))
    reasons = {s.item: s.reason for s in skips.skips}
    assert set(reasons) == set(bad) | {"no_path"}
    for name, (_, word) in bad.items():
        assert word in reasons[name], (name, reasons[name])
    feats, meta = load_features(tmp_path / "out")
    assert stats.n_utts == 1 and list(feats) == ["ok"] and meta == {"dim": 40}
    assert feats["ok"].shape == (65, 40) and feats["ok"].dtype == np.float16


# --- batching and storage --------------------------------------------------------------------


def test_make_batches_by_hand() -> None:
    batches = make_batches(np.array([1.0, 1.05, 2.0, 2.1, 5.0]), batch_seconds=10.0)
    assert [b.tolist() for b in batches] == [[4], [3, 2], [1, 0]]
    # the padded-audio budget: 4 x 2.1 s > 6 s
    batches = make_batches(np.array([2.0, 2.05, 2.1, 2.0, 2.02]), batch_seconds=6.0)
    assert [len(b) for b in batches] == [2, 2, 1]


def test_make_batches_respects_budget_and_fill() -> None:
    seconds = np.random.default_rng(0).uniform(1.0, 6.0, 300)
    batches = make_batches(seconds, batch_seconds=20.0, min_fill=0.95, per_item=True)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    for b in batches:
        longest = seconds[b].max()
        assert len(b) == 1 or len(b) * longest <= 20.0
        assert seconds[b].min() >= 0.95 * longest


@pytest.mark.parametrize("tail", [(3,), (2, 3)])
def test_frame_writer_round_trip(tmp_path: Path, tail: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    arrays = {
        f"u{i}": rng.normal(size=(n, *tail)).astype(np.float32) for i, n in enumerate([4, 1, 7])
    }
    writer = FrameWriter(tmp_path / "features.npz")
    for k, a in arrays.items():
        writer.add(k, a)
    assert writer.close(tail) == 12
    (tmp_path / "meta.json").write_text("{}")
    with np.load(tmp_path / "features.npz") as z:
        assert z["offsets"].tolist() == [0, 4, 5, 12] and z["frames"].shape == (12, *tail)
    feats, _ = load_features(tmp_path)
    for k, a in arrays.items():
        assert feats[k].dtype == np.float16 and np.allclose(feats[k], a, atol=2e-3)
    assert not list(tmp_path.glob("*.tmp"))


def test_frame_writer_rejects_mixed_shapes(tmp_path: Path) -> None:
    writer = FrameWriter(tmp_path / "features.npz")
    writer.add("a", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="b: frame shape"):
        writer.add("b", np.zeros((2, 4)))


# --- log-mel ---------------------------------------------------------------------------------


def test_mel_scale_round_trip_and_filterbank_shape() -> None:
    assert np.isclose(hz_to_mel(1000.0), 999.99, atol=0.1)  # HTK: 1000 Hz ~ 1000 mel
    assert np.allclose(mel_to_hz(hz_to_mel([0.0, 440.0, 8000.0])), [0.0, 440.0, 8000.0])
    fb = mel_filterbank(80)
    assert fb.shape == (257, 80) and float(fb.max()) <= 1.0
    assert (fb.sum(dim=0) > 0).all()


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 6000.0])
def test_logmel_tone_peaks_in_its_mel_band(freq: float) -> None:
    enc = LogMelEncoder(80, CPU)
    (frames,) = enc([tone(freq, 1.0, SAMPLE_RATE)])
    assert frames.shape == (50, 80)
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(8000.0), 82))
    centre_band = int(np.argmin(np.abs(edges[1:-1] - freq)))
    peaks = frames[5:-5].argmax(axis=1)
    assert np.all(np.abs(peaks - centre_band) <= 1), (peaks, centre_band)


def test_logmel_frame_t_is_centred_on_its_interval() -> None:
    wave = np.full(16000, 1e-3, np.float32)
    wave[25 * 320 + 160] = 1.0  # the centre of [25/50, 26/50)
    (frames,) = LogMelEncoder(40, CPU)([wave])
    assert int(frames.sum(axis=1).argmax()) == 25


def test_logmel_batched_equals_one_by_one() -> None:
    rng = np.random.default_rng(2)
    waves = [rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 15000, 9170, 401)]
    enc = LogMelEncoder(80, CPU)
    batched = enc(waves)
    for w, b in zip(waves, batched, strict=True):
        assert b.shape == (grid_frames(len(w)), 80)
        assert np.allclose(b, enc([w])[0], atol=1e-4)


def test_logmel_all_layers_and_utterance_norm() -> None:
    rng = np.random.default_rng(4)
    wave = (rng.normal(0, 0.1, 9600) * np.linspace(0.2, 1.0, 9600)).astype(np.float32)
    enc = build_encoder(FeatureParams(encoder="logmel", n_mels=40, layer="all", device="cpu"))
    (frames,) = enc([wave])
    assert frames.shape == (30, 1, 40) and enc.n_layers == 1
    normed = utterance_normalise(frames[:, 0])
    assert np.allclose(normed.mean(axis=0), 0.0, atol=1e-4)
    assert np.allclose(normed.std(axis=0), 1.0, atol=1e-3)


# --- a tiny wav2vec2 (slow: importing transformers alone takes seconds) ----------------------


def save_tiny_wav2vec2(folder: Path, with_mask: bool = True) -> Path:
    """A randomly initialised 2-layer Wav2Vec2 at 50 frames/s (strides 5*4*4*4 = 320)."""
    return save_random_wav2vec2(folder, "tiny", with_mask)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the tiny model with an attention-mask feature extractor."""
    return save_tiny_wav2vec2(tmp_path_factory.mktemp("tiny_w2v2"))


@pytest.fixture(scope="module")
def waves() -> list[np.ndarray]:
    """Four utterances of different, odd lengths."""
    rng = np.random.default_rng(3)
    return [rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 16159, 14977, 12345)]


@pytest.mark.slow
def test_tiny_wav2vec2_frames_follow_the_grid(
    tiny_model: Path, waves: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = HFEncoder(str(tiny_model), -1, CPU)
    assert enc.use_mask and enc.dim == 32 and enc.n_layers == 3
    for w, f in zip(waves, enc(waves), strict=True):
        # F(n) = round(n / 320), so |F - duration * 50| <= 1/2 (the contract allows 1)
        assert len(f) == grid_frames(len(w)) and abs(len(f) - len(w) / 320) <= 0.5
        assert f.shape[1] == 32 and np.isfinite(f).all()


@pytest.mark.slow
def test_tiny_wav2vec2_batched_equals_one_by_one(tiny_model: Path, waves: list[np.ndarray]) -> None:
    enc = HFEncoder(str(tiny_model), -1, CPU)
    for w, b in zip(waves, enc(waves), strict=True):
        (one,) = enc([w])
        assert b.shape == one.shape and np.abs(b - one).max() < 1e-3


@pytest.mark.slow
def test_tiny_wav2vec2_all_layers(tiny_model: Path, waves: list[np.ndarray]) -> None:
    all_layers = HFEncoder(str(tiny_model), "all", CPU)(waves[:2])
    first = HFEncoder(str(tiny_model), 0, CPU)(waves[:2])
    last = HFEncoder(str(tiny_model), -1, CPU)(waves[:2])
    for a, f, la in zip(all_layers, first, last, strict=True):
        assert a.shape == (len(f), 3, 32)
        assert np.allclose(a[:, 0], f, atol=1e-5) and np.allclose(a[:, -1], la, atol=1e-5)
        assert not np.allclose(a[:, 0], a[:, -1])


@pytest.mark.slow
def test_layer_out_of_range_is_an_error(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match=r"features.layer .* got 3"):
        HFEncoder(str(tiny_model), 3, CPU)


@pytest.mark.slow
def test_group_norm_model_without_extractor_mask_gets_one_and_is_batch_invariant(
    tmp_path: Path, waves: list[np.ndarray]
) -> None:
    # Before, a group-normalised model whose feature extractor has no mask (wav2vec2-base) ran
    # on zero padding without a mask, so only the longest of a batch matched its frames alone.
    # Now its first-layer group norm takes each utterance's statistics over its own frames and
    # the mask (built from the lengths) reaches the attention: every utterance matches.
    enc = HFEncoder(str(save_tiny_wav2vec2(tmp_path / "group", with_mask=False)), -1, CPU)
    assert not enc.extractor.return_attention_mask
    assert enc.use_mask and enc.min_fill == 0.9 and enc.batch_invariant
    inputs = enc.inputs(waves[:2])
    assert inputs["attention_mask"].sum(-1).tolist() == [len(w) for w in waves[:2]]
    for w, b in zip(waves, enc(waves), strict=True):
        (one,) = enc([w])
        assert b.shape == one.shape and np.abs(b - one).max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", ["agcc-test/no-such-model", "./no/such/folder"])
def test_missing_model_says_how_to_get_it(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hint = "huggingface-cli download" if name.startswith("agcc") else "save_pretrained"
    with pytest.raises(ModelNotFoundError, match=hint) as err:
        HFEncoder(name, -1, CPU)
    assert name in str(err.value) and isinstance(err.value, FileNotFoundError)


# --- Fig. 2 association measures (agcc.analyze) ----------------------------------------------


def test_association_counts_and_row_shares_by_hand() -> None:
    counts = association_counts(np.array([0, 0, 0, 0, 2, 2]), np.array([0, 0, 0, 1, 1, 0]), 3, 2)
    assert counts.tolist() == [[3, 1], [0, 0], [1, 1]]
    shares = row_shares(counts)
    assert np.allclose(shares[0], [0.75, 0.25]) and np.isnan(shares[1]).all()
    assert mean_max_row_share(counts) == pytest.approx((0.75 + 0.5) / 2)
    assert np.isnan(mean_max_row_share(np.zeros((2, 2))))
    with pytest.raises(ValueError, match="k_ag=2"):
        association_counts(np.array([2]), np.array([0]), 2, 2)


def test_association_perfect_versus_independent() -> None:
    rng = np.random.default_rng(0)
    ag = rng.integers(0, 5, 2000)
    perfect = association(ag, (ag + 3) % 5, 5, 5, rng)  # a relabelling: one-to-one
    assert perfect["max_row_share"] == pytest.approx(1.0)
    assert perfect["nmi"] == pytest.approx(1.0)
    assert perfect["max_row_share_perm"] < 0.3
    independent = association(ag, rng.integers(0, 5, 2000), 5, 5, rng)
    assert independent["nmi"] < 0.01
    assert independent["max_row_share"] == pytest.approx(
        independent["max_row_share_perm"], abs=0.03
    )
