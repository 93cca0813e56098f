"""A frontal 68-point face (iBUG / dlib order) whose mouth and chin follow the articulation.

Face units: the inter-ocular distance (between the eye centres) is 1, the origin is the eye
midpoint, x points to the image right and y down. Point groups: jaw 0-16, brows 17-26, nose
27-35, eyes 36-47, outer mouth 48-59, inner mouth 60-67.

Mouth model, per frame, from jaw opening J, spreading S, rounding R and lip closure C:

    half width  w = w0 (1 + 0.22 S - 0.30 R)
    inner gap   g = g0 J (1 - C), the lower lip taking 3/4 of it
    lip contour at u in [-1, 1] (corner to corner): f(u) = (1 - u^2)^e, e = 1 - 0.45 R
    chin        jaw points drop by chin0 J sin(phi)^3 (phi = 0 at the ears, pi/2 at the chin)

Rounding also thickens the lips (they protrude); spreading beyond 0.4 lifts the corners.
``render`` then puts the face in a camera: roll, a yaw-like horizontal squeeze using per-point
depth, a little pitch, scale in pixels, a drifting translation and landmark noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agcc.demo.prosody import smooth_noise

N_POINTS = 68
JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
MOUTH = np.arange(48, 68)
# Mouth points: (index, u position along the lip, contour) with contour in
# {"corner", "inner_corner", "outer_up", "outer_low", "inner_up", "inner_low"}.
_OUTER_UP = ((49, -0.62), (50, -0.3), (51, 0.0), (52, 0.3), (53, 0.62))
_OUTER_LOW = ((55, 0.62), (56, 0.3), (57, 0.0), (58, -0.3), (59, -0.62))
_INNER_UP = ((61, -0.45), (62, 0.0), (63, 0.45))
_INNER_LOW = ((65, 0.45), (66, 0.0), (67, -0.45))
_BROW_INNER_WEIGHT = np.array([0.4, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4])


@dataclass(frozen=True)
class FaceGeometry:
    """One person's face: static points (68, 2), depth (68,) and mouth constants."""

    points: np.ndarray
    depth: np.ndarray
    mouth_y: float
    half_width: float
    lip_up: float
    lip_low: float
    gap_gain: float
    chin_drop: float


@dataclass(frozen=True)
class Camera:
    """Camera and tracker statistics of one corpus."""

    fps: float
    scale_px: tuple[float, float]  # mean, sd of the inter-ocular distance in pixels
    centre_px: tuple[float, float]
    centre_sd_px: float
    roll_sd_deg: float
    yaw_sd_deg: float
    sway_deg: float  # amplitude of slow head rotation during the utterance
    drift_px: float
    noise_px: float
    confidence: tuple[float, float]  # mean, sd of the tracker confidence on good frames
    fail_rate: float  # isolated frames with success = 0
    lowconf_rate: float  # frames tracked badly (low confidence, large error)
    dropout_rate: float  # share of utterances with a dropout of 10-25 frames


def _jaw_angles() -> np.ndarray:
    """Angle phi of each jaw point: 0 at point 0 (right ear), pi at point 16."""
    return np.pi * np.arange(17) / 16


def _static_points(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Jaw, brows, nose and eyes (68, 2) of one person (mouth left at 0) and their depth (68,)."""
    pts, depth = np.zeros((N_POINTS, 2)), np.zeros(N_POINTS)
    phi = _jaw_angles()
    c, s = np.cos(phi), np.sin(phi)
    width, height = rng.normal(1.02, 0.05), rng.normal(1.5, 0.07)
    pts[JAW, 0] = -width * np.sign(c) * np.abs(c) ** 0.8
    pts[JAW, 1] = 0.05 + height * s**1.3
    depth[JAW] = -0.8 + 0.9 * s
    brow_x = np.array([-0.95, -0.78, -0.58, -0.38, -0.18])
    brow_y = np.array([-0.28, -0.38, -0.42, -0.40, -0.34]) + rng.normal(0, 0.03)
    pts[17:22] = np.stack([brow_x, brow_y], 1)
    pts[22:27] = np.stack([-brow_x[::-1], brow_y[::-1]], 1)
    depth[BROWS] = 0.05
    nose = rng.normal(1.0, 0.06)
    pts[27:31, 1] = np.array([-0.02, 0.17, 0.36, 0.55]) * nose
    pts[31:36] = np.stack([[-0.2, -0.1, 0, 0.1, 0.2], np.array([0.66, 0.69, 0.71, 0.69, 0.66])], 1)
    pts[31:36, 1] *= nose
    depth[27:36] = [0.15, 0.3, 0.45, 0.6, 0.35, 0.4, 0.45, 0.4, 0.35]
    eye_x = np.array([-0.77, -0.6, -0.4, -0.23, -0.4, -0.6])
    eye_y = np.array([0.0, -0.07, -0.07, 0.0, 0.07, 0.07]) * rng.normal(1.0, 0.1)
    pts[36:42] = np.stack([eye_x, eye_y], 1)
    pts[42:48] = np.stack([-eye_x[[3, 2, 1, 0, 5, 4]], eye_y[[3, 2, 1, 0, 5, 4]]], 1)
    depth[[36, 45]] = -0.05
    depth[MOUTH] = 0.3
    depth[[48, 54, 60, 64]] = 0.15
    pts[:48] += rng.normal(0.0, 0.012, size=(48, 2))
    return pts, depth


def make_face(rng: np.random.Generator) -> FaceGeometry:
    """A random person's face geometry around the template."""
    pts, depth = _static_points(rng)
    return FaceGeometry(
        points=pts,
        depth=depth,
        mouth_y=rng.normal(1.0, 0.05),
        half_width=rng.normal(0.42, 0.03),
        lip_up=rng.normal(0.11, 0.013),
        lip_low=rng.normal(0.13, 0.015),
        gap_gain=rng.normal(0.42, 0.035),
        chin_drop=rng.normal(0.45, 0.04),
    )


def _lip(u: float, expo: np.ndarray) -> np.ndarray:
    """Lip-opening profile f(u) = (1 - u^2)^e (F,) at position u for exponents e (F,)."""
    return (1.0 - u * u) ** expo


def mouth_points(face: FaceGeometry, visible: np.ndarray, corner: np.ndarray) -> np.ndarray:
    """Mouth landmarks 48-67 (F, 20, 2) from jaw/spread/round/close (F, 4) and corner lift (F,)."""
    jaw, spread, rnd, close = visible.T
    w = face.half_width * (1 + 0.22 * spread - 0.30 * rnd)
    gap = face.gap_gain * jaw * (1 - np.clip(close, 0, 1))
    expo = 1.0 - 0.45 * np.clip(rnd, 0, 1)
    thick = 1 + 0.25 * rnd - 0.12 * spread
    lift = corner + 0.06 * np.maximum(spread - 0.4, 0.0)
    y0 = face.mouth_y
    out = np.zeros((len(jaw), 20, 2))

    def put(i: int, x: np.ndarray, y: np.ndarray) -> None:
        """Store point ``i``'s x and y for all frames."""
        out[:, i - 48, 0], out[:, i - 48, 1] = x, y

    for i, sign, inner in ((48, -1, 1.0), (54, 1, 1.0), (60, -1, 0.88), (64, 1, 0.88)):
        put(i, sign * inner * w, y0 - lift)
    for i, u in _INNER_UP + _OUTER_UP:
        top = y0 - lift * u * u - 0.25 * gap * _lip(u, expo)
        if i < 60:
            bow = 1 - 0.55 * u * u - 0.1 * np.exp(-((u / 0.12) ** 2))
            put(i, u * w, top - face.lip_up * thick * bow)
        else:
            put(i, u * 0.88 * w, top)
    for i, u in _INNER_LOW + _OUTER_LOW:
        bottom = y0 - lift * u * u + 0.75 * gap * _lip(u, expo)
        if i < 60:
            put(i, u * w, bottom + face.lip_low * thick * np.sqrt(1 - 0.8 * u * u))
        else:
            put(i, u * 0.88 * w, bottom)
    return out


def face_frames(
    face: FaceGeometry,
    visible: np.ndarray,
    corner: float,
    brow: np.ndarray,
    blink: np.ndarray,
) -> np.ndarray:
    """All 68 points (F, 68, 2) in face units: mouth and chin moving, brows and eyelids too."""
    n = len(visible)
    pts = np.repeat(face.points[None], n, axis=0)
    pts[:, MOUTH] = mouth_points(face, visible, np.full(n, corner))
    weight = np.sin(_jaw_angles()) ** 3
    pts[:, JAW, 1] += face.chin_drop * visible[:, :1] * weight[None, :]
    pts[:, JAW, 0] *= 1 - 0.05 * visible[:, :1] * weight[None, :]
    pts[:, BROWS, 1] -= brow[:, None] * _BROW_INNER_WEIGHT[None, :]
    pts[:, [37, 38, 43, 44], 1] += 0.12 * blink[:, None]
    pts[:, [40, 41, 46, 47], 1] -= 0.02 * blink[:, None]
    return pts


def blinks(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure 0..1 (F,): blinks of ~150 ms at a rate of about one per 3 s."""
    n_blinks = rng.poisson(0.33 * (t[-1] + 1e-3) + 0.1)
    onsets = rng.uniform(0.0, t[-1] + 1e-3, size=n_blinks)
    lid = np.zeros(len(t))
    for on in onsets:
        lid = np.maximum(lid, np.clip(1 - np.abs(t - on - 0.075) / 0.075, 0, 1))
    return lid


def project(
    pts: np.ndarray,
    depth: np.ndarray,
    t: np.ndarray,
    cam: Camera,
    motion: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, float]]:
    """Face units (F, 68, 2) -> pixels (F, 68, 2) through a moving camera; returns its pose.

    x' = x cos(yaw) + depth sin(yaw), y' = y cos(pitch) - depth sin(pitch), then a rotation by
    the roll angle, a scale (pixels per inter-ocular distance) and a drifting translation.
    """
    roll = np.radians(rng.normal(0, cam.roll_sd_deg) + cam.sway_deg * motion * smooth_noise(t, rng))
    yaw = np.radians(rng.normal(0, cam.yaw_sd_deg) + cam.sway_deg * motion * smooth_noise(t, rng))
    pitch = np.radians(0.5 * cam.sway_deg * motion * smooth_noise(t, rng))
    scale = rng.normal(*cam.scale_px) * (1 + 0.01 * smooth_noise(t, rng))
    centre = np.array(cam.centre_px) + rng.normal(0, cam.centre_sd_px, 2)
    drift = cam.drift_px * np.stack([smooth_noise(t, rng), smooth_noise(t, rng)], 1)  # (F, 2)
    x = pts[..., 0] * np.cos(yaw)[:, None] + depth[None] * np.sin(yaw)[:, None]
    y = pts[..., 1] * np.cos(pitch)[:, None] - depth[None] * np.sin(pitch)[:, None]
    cr, sr = np.cos(roll)[:, None], np.sin(roll)[:, None]
    px = np.stack([cr * x - sr * y, sr * x + cr * y], axis=-1) * scale[:, None, None]
    px += (centre[None] + drift)[:, None, :]
    pose = {
        "roll_deg": float(np.degrees(roll.mean())),
        "yaw_deg": float(np.degrees(yaw.mean())),
        "face_scale_px": float(scale.mean()),
    }
    return px, pose


def tracker_output(
    px: np.ndarray, cam: Camera, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Noisy landmarks (F, 68, 2), confidence (F,), success (F,) and whether a dropout occurred.

    Good frames: Gaussian landmark noise, confidence ~ N(mean, sd). Low-confidence frames: large
    errors and confidence 0.15-0.45. Failed frames (isolated, or one 10-25 frame dropout in about
    ``dropout_rate`` of utterances): success 0, confidence < 0.1, landmarks written as 0.
    """
    n = len(px)
    pts = px + rng.normal(0.0, cam.noise_px, px.shape)
    conf = np.clip(rng.normal(*cam.confidence, n), 0.6, 0.99)
    fail = rng.random(n) < cam.fail_rate
    fail |= np.roll(fail, 1) & (rng.random(n) < 0.4)  # failures come in short runs
    dropout = bool(rng.random() < cam.dropout_rate) and n > 30
    if dropout:
        length = int(rng.integers(10, 26))
        start = int(rng.integers(1, n - length))
        fail[start : start + length] = True
    low = (rng.random(n) < cam.lowconf_rate) & ~fail
    conf[low] = rng.uniform(0.15, 0.45, int(low.sum()))
    pts[low] += rng.normal(0.0, 3.0 + 4 * cam.noise_px, (int(low.sum()), N_POINTS, 2))
    conf[fail] = rng.uniform(0.0, 0.1, int(fail.sum()))
    pts[fail] = 0.0
    return pts, conf, (~fail).astype(int), dropout
