"""The one segment-to-frame rule: frame_range (vectorised) and segment_frames on top of it."""

from __future__ import annotations

import numpy as np
import pytest

from agcc.framing import frame_range, segment_frames


def _one(start: float, end: float, n: int) -> tuple[int, int, bool]:
    """frame_range of one segment as plain ints."""
    lo, hi, inside = frame_range(np.array([start]), np.array([end]), np.array([n]), 50.0)
    return int(lo[0]), int(hi[0]), bool(inside[0])


def test_float_error_in_the_times_does_not_add_a_frame() -> None:
    assert _one(0.1, 0.3, 100) == (5, 15, True)  # the 0.3 * 50 case of the features tests
    assert 0.14 * 50 == 7.000000000000001
    assert _one(0.1, 0.14, 100) == (5, 7, True)  # not 8
    assert _one(0.58, 0.7, 100)[0] == 29  # 0.58 * 50 = 28.999999999999996


def test_zero_length_segment_gets_its_frame() -> None:
    assert _one(0.1, 0.1, 100) == (5, 6, True)
    assert _one(0.1, 0.09, 100) == (5, 6, True)  # end before start: still one frame


def test_segment_past_the_end_is_clipped_or_outside() -> None:
    assert _one(1.98, 2.5, 100) == (99, 100, True)  # starts inside: clipped to the utterance
    lo, hi, inside = _one(2.0, 2.5, 100)  # starts where the audio ends
    assert not inside and 0 <= lo < hi <= 100
    assert not _one(0.0, 0.1, 0)[2]  # an utterance without frames has none inside


def test_negative_start_is_clipped_to_frame_zero() -> None:
    assert _one(-0.01, 0.05, 100) == (0, 3, True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segment_frames_equals_frame_range_for_every_segment(seed: int) -> None:
    rng = np.random.default_rng(seed)
    start = np.round(rng.uniform(-0.1, 3.0, 300), 3)
    end = start + np.round(rng.uniform(0.0, 0.4, 300), 3)
    n = rng.integers(0, 150, 300)
    lo, hi, inside = frame_range(start, end, n, 50.0)
    for i in range(300):
        s = segment_frames(float(start[i]), float(end[i]), int(n[i]))
        if inside[i]:
            assert (s.start, s.stop) == (lo[i], hi[i])
        else:
            assert s.start == s.stop == n[i]  # empty
