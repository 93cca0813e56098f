"""Mouth geometry: the 68-point layout, normalisation of the outer-lip points, gap filling.

Pure functions on arrays: points (F, 68, 2) in image pixels in, normalised mouth features
(F, 24) out (docs/method.md section 1).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

N_POINTS = 68


MOUTH = tuple(range(48, 60))  # outer lip contour


LEFT_EYE = tuple(range(36, 42))  # image-left eye (the subject's right eye)


RIGHT_EYE = tuple(range(42, 48))


def normalise_points(points: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """Map points into the eye frame: eye midpoint at 0, eye line on +x, eye distance 1.

    With e_L = eyes[:, 0], e_R = eyes[:, 1], m = (e_L + e_R) / 2, d = e_R - e_L and q = p - m:

        x' = (q . d) / |d|^2,    y' = (q_y d_x - q_x d_y) / |d|^2

    i.e. translate by -m, rotate by -atan2(d_y, d_x), scale by 1 / |d|. The map is a proper
    similarity (no reflection), so image coordinates keep their convention: y grows downwards
    and the mouth lies at positive y'; the eyes land on (-0.5, 0) and (0.5, 0). Frames whose
    eyes are missing or coincide give NaN.

    Args:
        points: (F, P, 2) image coordinates.
        eyes: (F, 2, 2) eye centres (index 0 = image-left eye) in the same coordinates.

    Returns:
        (F, P, 2) normalised coordinates, float64.
    """
    points = np.asarray(points, dtype=np.float64)
    eyes = np.asarray(eyes, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] != 2 or eyes.shape != (points.shape[0], 2, 2):
        raise ValueError(
            f"expected points (F, P, 2) and eyes (F, 2, 2), got {points.shape} and {eyes.shape}"
        )
    mid = eyes.mean(axis=1, keepdims=True)  # (F, 1, 2)
    d = eyes[:, 1] - eyes[:, 0]  # (F, 2)
    norm2 = (d**2).sum(axis=1)[:, None]  # (F, 1)
    q = points - mid  # (F, P, 2)
    dx, dy = d[:, None, 0], d[:, None, 1]  # (F, 1) each
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (q[..., 0] * dx + q[..., 1] * dy) / norm2
        y = (q[..., 1] * dx - q[..., 0] * dy) / norm2
    return np.stack([x, y], axis=-1)  # (F, P, 2)


def normalise_mouth(points: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """Outer-mouth points 48-59 (F, 12, 2) in the eye frame of ``normalise_points``.

    Args:
        points: (F, 68, 2) image coordinates (y down).
        eyes: (F, 2, 2) eye centres, index 0 = image-left eye.

    Returns:
        (F, 12, 2): row k is landmark 48 + k; x along the eye line (image-left eye at
        negative x), y perpendicular to it growing downwards, in inter-eye distances.
    """
    points = np.asarray(points)
    if points.ndim != 3 or points.shape[1:] != (N_POINTS, 2):
        raise ValueError(f"expected points of shape (F, 68, 2), got {points.shape}")
    return normalise_points(points[:, MOUTH], eyes)


def mouth_features(points: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """Flat mouth features (F, 24): x48, y48, x49, y49, ..., x59, y59 (see normalise_mouth)."""
    mouth = normalise_mouth(points, eyes)  # (F, 12, 2)
    return mouth.reshape(mouth.shape[0], 2 * len(MOUTH))  # (F, 24)


def mouth_column(point: int, axis: Literal["x", "y"]) -> int:
    """Column of landmark ``point`` (48-59) and ``axis`` in ``mouth_features``' (F, 24) output."""
    if point not in MOUTH or axis not in ("x", "y"):
        raise ValueError(f"point must be in 48..59 and axis 'x' or 'y', got {point!r}, {axis!r}")
    return 2 * (point - MOUTH[0]) + (axis == "y")


def interpolate_gaps(time: np.ndarray, values: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """Fill interior NaN runs of at most ``max_gap_frames`` frames linearly in time.

    For a run of missing frames between valid frames a and b, each column gets
    v(t) = v_a + (v_b - v_a) (t - t_a) / (t_b - t_a). Longer runs and runs touching the first
    or last frame stay NaN. Columns are treated independently.

    Args:
        time: (F,) increasing times.
        values: (F, D) values with NaN for missing entries.
        max_gap_frames: longest run that is filled (0 fills nothing).

    Returns:
        (F, D) float64 copy of ``values`` with the short gaps filled.
    """
    time = np.asarray(time, dtype=np.float64)
    out = np.array(values, dtype=np.float64, copy=True)
    if out.ndim != 2 or time.shape != (out.shape[0],):
        raise ValueError(f"expected time (F,) and values (F, D), got {time.shape}, {out.shape}")
    if max_gap_frames <= 0:
        return out
    for col in out.T:  # views: writes go into out
        missing = np.isnan(col)
        fill = _short_interior_runs(missing, max_gap_frames)
        if fill.any():
            col[fill] = np.interp(time[fill], time[~missing], col[~missing])
    return out


def _short_interior_runs(mask: np.ndarray, max_len: int) -> np.ndarray:
    """Boolean mask of the True runs of ``mask`` that are interior and at most max_len long."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # ends exclusive
    keep = (starts > 0) & (ends < len(mask)) & (ends - starts <= max_len)
    out = np.zeros(len(mask), dtype=bool)
    for s, e in zip(starts[keep], ends[keep], strict=True):
        out[s:e] = True
    return out


def fps(time: np.ndarray) -> float:
    """Frame rate over the whole track, (F - 1) / duration (NaN for fewer than two frames).

    Robust to timestamps rounded to milliseconds (OpenFace writes 0.033, 0.067, ...), which
    would bias a median-step estimate (1 / 0.033 = 30.3 for 30 fps video).
    """
    if len(time) < 2 or time[-1] <= time[0]:
        return math.nan
    return (len(time) - 1) / float(time[-1] - time[0])


def eye_centres(points: np.ndarray, pupils: np.ndarray | None = None) -> np.ndarray:
    """Eye centres (F, 2, 2), index 0 the image-left eye: ``pupils`` if given, else eye means.

    Without pupils: left = mean of points 36-41, right = mean of points 42-47 of ``points``
    (F, 68, 2).
    """
    if pupils is not None:
        return pupils
    left = points[:, LEFT_EYE].mean(axis=1)  # (F, 2)
    right = points[:, RIGHT_EYE].mean(axis=1)
    return np.stack([left, right], axis=1)  # (F, 2, 2)
