"""Vowel segment cutting: frame counts, resampling values, margins and drop reasons."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from praatio import textgrid

from agcc.params import SegmentParams
from agcc.skips import InputError
from agcc.vowel_segments import cut_segment, sample_times, segment_utterance, track_end


def _track(fps: float = 30.0, seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """A track whose column j is the linear ramp j + t (so interpolation is exact)."""
    t = np.arange(int(seconds * fps)) / fps
    return t, t[:, None] + np.arange(24)[None, :]


def test_sample_times_counts_and_centres() -> None:
    t = sample_times(1.0, 1.1, 50.0)
    assert len(t) == 5
    np.testing.assert_allclose(t, [1.01, 1.03, 1.05, 1.07, 1.09])
    assert len(sample_times(0.0, 0.009, 50.0)) == 0


def test_30fps_vowel_gets_more_than_two_frames() -> None:
    time, mouth = _track()
    cut = cut_segment(time, mouth, 0.50, 0.58, SegmentParams(fps=50, min_frames=3))
    # 80 ms spans 2-3 video frames at 30 fps, 4 frames at 50 fps
    assert cut.frames is not None and cut.frames.shape == (4, 24)
    np.testing.assert_allclose(cut.frames[:, 0], sample_times(0.5, 0.58, 50), atol=1e-6)
    np.testing.assert_allclose(cut.frames[:, 7] - cut.frames[:, 0], 7.0, atol=1e-5)


def test_context_margin_widens_segment() -> None:
    time, mouth = _track()
    sp = SegmentParams(fps=50, context_ms=20)
    cut = cut_segment(time, mouth, 0.50, 0.60, sp)
    assert (cut.seg_start, cut.seg_end) == pytest.approx((0.48, 0.62))
    assert cut.frames is not None and len(cut.frames) == 7


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [(0.50, 0.53, "too_short"), (1.95, 2.20, "outside_video"), (0.90, 1.10, "landmark_gap")],
)
def test_drop_reasons(start: float, end: float, reason: str) -> None:
    time, mouth = _track()
    mouth = mouth.copy()
    mouth[29:33] = np.nan  # a long gap around t = 1.0 s that interpolation left open
    cut = cut_segment(time, mouth, start, end, SegmentParams(fps=50, min_frames=3))
    assert cut.frames is None and cut.dropped == reason


def test_segment_next_to_a_gap_is_kept() -> None:
    time, mouth = _track()
    mouth = mouth.copy()
    mouth[40:45] = np.nan  # 1.33-1.47 s
    cut = cut_segment(time, mouth, 0.9, 1.2, SegmentParams(fps=50))
    assert cut.frames is not None and not np.isnan(cut.frames).any()


def _textgrid(path: Path, phones: list[tuple[float, float, str]], duration: float = 2.0) -> str:
    """Write an MFA-style TextGrid with one word spanning the phones, over [0, duration]."""
    tg = textgrid.Textgrid()
    end = phones[-1][1]
    tg.addTier(textgrid.IntervalTier("words", [(phones[0][0], end, "word")], 0, duration))
    tg.addTier(textgrid.IntervalTier("phones", phones, 0, duration))
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True)
    return str(path)


def test_utterance_without_target_vowel_is_an_input_error(tmp_path: Path) -> None:
    tg = _textgrid(tmp_path / "u.TextGrid", [(0.1, 0.2, "S"), (0.2, 0.4, "IH1"), (0.4, 0.5, "T")])
    row = pd.Series({"utt_id": "u", "textgrid": tg})
    with pytest.raises(InputError, match=r"u\.TextGrid: no target vowel"):
        segment_utterance(row, _track(), SegmentParams(), Counter())


def test_unknown_phones_are_counted_and_vowels_kept(tmp_path: Path) -> None:
    tg = _textgrid(tmp_path / "u.TextGrid", [(0.1, 0.2, "XQ"), (0.2, 0.4, "AA1"), (0.4, 0.5, "T")])
    dropped: Counter = Counter()
    out = segment_utterance(
        pd.Series({"utt_id": "u", "textgrid": tg}), _track(), SegmentParams(), dropped
    )
    assert [m["vowel"] for m, _ in out] == ["AA"] and out[0][1].shape == (10, 24)
    assert dropped["unknown_phone.XQ"] == 1 and dropped["unknown_phone_utts"] == 1


def test_no_textgrid_configured() -> None:
    with pytest.raises(InputError, match="no TextGrid"):
        segment_utterance(
            pd.Series({"utt_id": "u", "textgrid": ""}), _track(), SegmentParams(), Counter()
        )


@pytest.mark.parametrize(
    ("tg_end", "fails"), [(2.0, False), (2.4, False), (2.6, True), (1.2, True)]
)
def test_textgrid_and_track_durations_must_agree(
    tmp_path: Path, tg_end: float, fails: bool
) -> None:
    tg = _textgrid(tmp_path / "u.TextGrid", [(0.2, 0.4, "AA1")], duration=tg_end)
    row = pd.Series({"utt_id": "u", "textgrid": tg, "landmarks": "u.csv"})
    sp = SegmentParams(max_duration_mismatch_s=0.5)
    if not fails:
        assert len(segment_utterance(row, _track(), sp, Counter())) == 1
        return
    with pytest.raises(InputError, match="durations disagree") as e:
        segment_utterance(row, _track(), sp, Counter())
    assert e.value.kind == "duration_mismatch"


def test_track_end_adds_one_frame_step() -> None:
    assert track_end(np.arange(60) / 30.0) == pytest.approx(2.0)
    assert track_end(np.zeros(0)) == 0.0
