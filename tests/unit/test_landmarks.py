"""OpenFace CSV reading, eye normalisation, gap filling and the landmarks stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agcc import mouth as geom
from agcc.extract.face import decode_frames
from agcc.io.mouth import load_mouth
from agcc.io.openface import read_openface_csv
from agcc.params import BaseParams, LandmarkParams
from agcc.skips import InputError, TooManySkipsError
from agcc.stages import landmarks as lm

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
LEFT, RIGHT = np.array([100.0, 100.0]), np.array([160.0, 100.0])


def openface_fixture() -> Path:
    """The real OpenFace 2.0 CSV from ../shared/fixtures, or skip when ../shared is absent."""
    path = SHARED / "fixtures" / "openface" / "pyfeat_OpenFace_Test.csv"
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared (real fixtures) lives beside the checkout")
    return path


def face(n_frames: int, seed: int = 0) -> np.ndarray:
    """(F, 68, 2) faces: eye points on hexagons around LEFT/RIGHT, mouth 48 at (130, 160)+k."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(80, 200, size=(n_frames, 68, 2))
    ring = 8 * np.stack([np.cos(np.arange(6) * np.pi / 3), np.sin(np.arange(6) * np.pi / 3)], 1)
    pts[:, 36:42] = LEFT + ring  # means are exactly LEFT / RIGHT
    pts[:, 42:48] = RIGHT + ring
    pts[:, 48] = [130.0, 160.0]
    pts[:, 48:60] += np.arange(n_frames)[:, None, None]  # moves 1 px per frame along x and y
    return pts


def write_openface(
    path: Path,
    points: np.ndarray,
    *,
    time: np.ndarray | None = None,
    success: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    face_id: np.ndarray | None = None,
    eye_lmk: np.ndarray | None = None,
    drop: tuple[str, ...] = (),
) -> Path:
    """Write an OpenFace-style CSV (", "-separated like FeatureExtraction) for ``points``."""
    n = len(points)
    cols: dict[str, np.ndarray] = {"frame": np.arange(1, n + 1)}
    if face_id is not None:
        cols["face_id"] = face_id
    cols["timestamp"] = np.arange(n) / 30.0 if time is None else time
    cols["confidence"] = np.full(n, 0.98) if confidence is None else confidence
    cols["success"] = np.ones(n, int) if success is None else success
    cols |= {f"{a}_{i}": points[:, i, k] for k, a in enumerate("xy") for i in range(68)}
    if eye_lmk is not None:
        cols |= {
            f"eye_lmk_{a}_{i}": eye_lmk[:, i, k] for k, a in enumerate("xy") for i in range(56)
        }
    names = [c for c in cols if c not in drop]
    lines = [", ".join(names)] + [", ".join(str(cols[c][r]) for c in names) for r in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Reading


def test_real_openface_fixture_old_header() -> None:
    track = read_openface_csv(openface_fixture(), min_confidence=0.5)
    # the file holds frames 1..100 (timestamps 0.000 .. 0.099), all with success == 1
    assert track.points.shape == (100, 68, 2) and track.time.shape == (100,)
    assert track.pupils is None  # OpenFace 2.0 header: no eye_lmk columns
    assert track.time[0] == 0.0 and track.time[-1] == pytest.approx(0.099)
    assert not np.isnan(track.points).any()
    assert tuple(track.points[0, 36]) == (297.654, 186.139)
    assert tuple(track.points[0, 48]) == (315.034, 237.529)
    mouth = geom.normalise_mouth(track.points, geom.eye_centres(track.points, track.pupils))
    assert np.all(mouth[:, :, 1] > 0.5)  # mouth below the eyes: y grows downwards
    assert np.all(mouth[:, 0, 0] < 0) and np.all(mouth[:, 6, 0] > 0)  # 48 left-eye side, 54 right


def test_confidence_threshold_on_real_fixture() -> None:
    # every frame has confidence 0.883333 except one at 0.983333
    track = read_openface_csv(openface_fixture(), min_confidence=0.9)
    missing = np.isnan(track.points).all(axis=(1, 2))
    assert missing.sum() == 99 and not np.isnan(track.points[~missing]).any()


def test_openface_22_header_uses_pupils(tmp_path: Path) -> None:
    pts = face(4)
    eye = np.zeros((4, 56, 2))
    eye[:, 0:8] = [90.0, 104.0]  # iris of the image-left eye, off the 36-41 mean
    eye[:, 28:36] = [170.0, 104.0]
    eye[:, 8:28] = eye[:, 36:56] = 999.0  # lids and the rest must not enter the pupil
    path = write_openface(tmp_path / "a.csv", pts, face_id=np.zeros(4, int), eye_lmk=eye)
    track = read_openface_csv(path, 0.5)
    assert track.pupils is not None
    np.testing.assert_allclose(track.pupils[0], [[90.0, 104.0], [170.0, 104.0]])
    np.testing.assert_allclose(geom.eye_centres(track.points, track.pupils), track.pupils)
    # mouth 48 at (130, 160): straight below the pupil midpoint (130, 104) by 56 px, IPD 80
    np.testing.assert_allclose(
        geom.normalise_mouth(track.points, geom.eye_centres(track.points, track.pupils))[0, 0],
        [0.0, 0.7],
        rtol=0,
        atol=1e-12,
    )


def test_eye_means_without_pupils(tmp_path: Path) -> None:
    track = read_openface_csv(write_openface(tmp_path / "a.csv", face(2)), 0.5)
    np.testing.assert_allclose(
        geom.eye_centres(track.points, track.pupils)[1], [LEFT, RIGHT], atol=1e-12
    )
    # eyes (100,100)-(160,100): midpoint (130,100), IPD 60; mouth 48 at (131,161) in frame 1
    np.testing.assert_allclose(
        geom.mouth_features(track.points, geom.eye_centres(track.points, track.pupils))[1, :2],
        [1 / 60, 61 / 60],
        atol=1e-12,
    )


def test_failed_and_low_confidence_frames_become_nan(tmp_path: Path) -> None:
    path = write_openface(
        tmp_path / "a.csv",
        face(5),
        success=np.array([1, 0, 1, 1, 1]),
        confidence=np.array([0.9, 0.9, 0.3, 0.5, 0.49]),
    )
    track = read_openface_csv(path, min_confidence=0.5)
    missing = np.isnan(track.points).all(axis=(1, 2))
    assert missing.tolist() == [False, True, True, False, True]
    assert not np.isnan(track.points[~missing]).any()


def test_all_frames_failed(tmp_path: Path) -> None:
    path = write_openface(tmp_path / "a.csv", face(3), success=np.zeros(3, int))
    with pytest.raises(InputError, match="all frames failed: 0 of 3") as err:
        read_openface_csv(path, 0.5)
    assert err.value.path == str(path)


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = write_openface(tmp_path / "a.csv", face(3), drop=("x_48",))
    with pytest.raises(InputError, match=r"missing columns: x_48$") as err:
        read_openface_csv(path, 0.5)
    assert err.value.path == str(path)


def test_missing_empty_and_garbled_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing file"):
        read_openface_csv(tmp_path / "none.csv", 0.5)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="unreadable CSV: empty"):
        read_openface_csv(tmp_path / "empty.csv", 0.5)
    bad = write_openface(tmp_path / "bad.csv", face(2))
    bad.write_text(bad.read_text().replace("0.98", "oops", 1))
    with pytest.raises(InputError, match="non-numeric"):
        read_openface_csv(bad, 0.5)


def test_non_increasing_timestamps(tmp_path: Path) -> None:
    path = write_openface(tmp_path / "a.csv", face(4), time=np.array([0.0, 0.1, 0.1, 0.2]))
    with pytest.raises(InputError, match=r"timestamps not increasing: row 2 \(0.1\) -> row 3"):
        read_openface_csv(path, 0.5)


def test_several_faces_keep_the_most_successful(tmp_path: Path) -> None:
    # face 0 (a background face) in frames 0-2 but failing twice; face 1 in frames 0, 2, 3
    f0, f1 = face(3, seed=1), face(3, seed=2)
    pts = np.concatenate([f0, f1])
    path = write_openface(
        tmp_path / "a.csv",
        pts,
        time=np.array([0.0, 1 / 30, 2 / 30, 0.0, 2 / 30, 3 / 30]),
        face_id=np.array([0, 0, 0, 1, 1, 1]),
        success=np.array([1, 0, 0, 1, 1, 1]),
    )
    track = read_openface_csv(path, 0.5)
    np.testing.assert_allclose(track.time, [0, 1 / 30, 2 / 30, 3 / 30])
    missing = np.isnan(track.points).all(axis=(1, 2))
    assert missing.tolist() == [False, True, False, False]  # face 1 was lost at frame 1
    np.testing.assert_allclose(track.points[[0, 2, 3]], f1, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Normalisation


def test_normalise_points_by_hand() -> None:
    # eye line vertical (right eye below the left in the image): rotate by -90 degrees
    eyes = np.array([[[0.0, 0.0], [0.0, 2.0]]])
    pts = np.array([[[-1.0, 1.0], [1.0, 1.0], [0.0, 2.0]]])
    np.testing.assert_allclose(
        geom.normalise_points(pts, eyes)[0], [[0.0, 0.5], [0.0, -0.5], [0.5, 0.0]], atol=1e-15
    )


def test_coincident_eyes_give_nan() -> None:
    out = geom.normalise_points(np.ones((1, 3, 2)), np.zeros((1, 2, 2)))
    assert np.isnan(out).all()


def test_mouth_column_order() -> None:
    assert [geom.mouth_column(48, "x"), geom.mouth_column(48, "y")] == [0, 1]
    assert [geom.mouth_column(54, "x"), geom.mouth_column(57, "y"), geom.mouth_column(59, "y")] == [
        12,
        19,
        23,
    ]
    pts, eyes = face(2), np.broadcast_to(np.stack([LEFT, RIGHT]), (2, 2, 2))
    flat, grid = geom.mouth_features(pts, eyes), geom.normalise_mouth(pts, eyes)
    assert flat[1, geom.mouth_column(57, "y")] == grid[1, 9, 1]
    with pytest.raises(ValueError, match="47"):
        geom.mouth_column(47, "x")


coords = st.floats(-50, 50, allow_nan=False)
face_points = arrays(np.float64, (2, 68, 2), elements=coords)
eye_pair = st.tuples(
    st.floats(-60, -20), st.floats(-10, 10), st.floats(20, 60), st.floats(-10, 10)
).map(lambda v: np.array([[[v[0], v[1]], [v[2], v[3]]]] * 2))  # (2, 2, 2)


@settings(deadline=None, max_examples=200)
@given(
    pts=face_points,
    eyes=eye_pair,
    angle=st.floats(-np.pi, np.pi),
    scale=st.floats(0.05, 20),
    shift=st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)),
)
def test_normalise_mouth_is_similarity_invariant(
    pts: np.ndarray, eyes: np.ndarray, angle: float, scale: float, shift: tuple[float, float]
) -> None:
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def move(p: np.ndarray) -> np.ndarray:
        return scale * p @ rot.T + np.array(shift)

    np.testing.assert_allclose(
        geom.normalise_mouth(move(pts), move(eyes)),
        geom.normalise_mouth(pts, eyes),
        rtol=0,
        atol=1e-9,
    )


@settings(deadline=None, max_examples=200)
@given(eyes=arrays(np.float64, (3, 2, 2), elements=st.floats(-1e3, 1e3)))
def test_eyes_land_ordered_at_unit_distance(eyes: np.ndarray) -> None:
    dist = np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=1)
    if np.any(dist < 1e-3):
        return  # coincident eyes give NaN (tested above)
    out = geom.normalise_points(eyes, eyes)  # (3, 2, 2)
    assert np.all(out[:, 0, 0] < out[:, 1, 0])
    np.testing.assert_allclose(np.linalg.norm(out[:, 1] - out[:, 0], axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(out, np.broadcast_to([[-0.5, 0], [0.5, 0]], out.shape), atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Gaps


def test_interpolate_gaps_exact_values() -> None:
    nan = np.nan
    time = np.array([0.0, 0.1, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1])
    values = np.array(
        [
            [nan, 0, nan, nan, 3, nan, nan, nan, nan, 8, nan],  # edges + gap of 2 + gap of 4
            [5, 5, 5, 5, nan, 7, 7, nan, 7, 7, 7],  # two gaps of 1
        ]
    ).T  # (F, 2)
    out = geom.interpolate_gaps(time, values, max_gap_frames=2)
    # t = 0.2 and 0.4 between (0.1, 0) and (0.5, 3): 3 * 0.1 / 0.4 and 3 * 0.3 / 0.4
    expected0 = [nan, 0, 0.75, 2.25, 3, nan, nan, nan, nan, 8, nan]
    expected1 = [5, 5, 5, 5, 6, 7, 7, 7, 7, 7, 7]
    np.testing.assert_allclose(out[:, 0], expected0, rtol=1e-12)
    np.testing.assert_allclose(out[:, 1], expected1, rtol=1e-12)
    assert np.isnan(values).sum() == 10  # input untouched
    np.testing.assert_array_equal(geom.interpolate_gaps(time, values, 0), values)
    still = geom.interpolate_gaps(time, values, max_gap_frames=4)[:, 0]
    np.testing.assert_allclose(still[5:9], [4, 5, 6, 7], rtol=1e-12)
    assert np.isnan(still[[0, 10]]).all()


# ---------------------------------------------------------------------------------------------
# The stage


def write_manifest(root: Path) -> Path:
    """Three utterances: a, b (with gaps of 1 and 4 frames) and c (missing CSV)."""
    (root / "of").mkdir()
    write_openface(root / "of" / "a.csv", face(4))
    success = np.array([1, 0, 1, 0, 0, 0, 0, 1, 1])  # gap of 1, then gap of 4
    write_openface(root / "of" / "b.csv", face(9, seed=3), success=success)
    manifest = root / "manifest.csv"
    manifest.write_text("utt_id,speaker,landmarks\na,s1,of/a.csv\nb,s1,of/b.csv\nc,s2,of/c.csv\n")
    return manifest


@pytest.mark.slow  # a fresh MLflow SQLite store costs about 2 s
def test_stage_writes_mouth_skips_and_metrics(tracked: Path) -> None:
    manifest = write_manifest(tracked)
    out = tracked / "out"
    lm.run("demo", manifest, LandmarkParams(max_gap_frames=3), BaseParams(max_skip_share=0.5), out)
    with np.load(out / "mouth.npz") as z:
        assert z["utt_id"].tolist() == ["a", "b"]
        assert z["offsets"].tolist() == [0, 4, 13] and z["offsets"].dtype == np.int64
        assert z["time"].dtype == np.float64 and z["mouth"].dtype == np.float32
        assert z["mouth"].shape == (13, 24)
    mouth = load_mouth(out / "mouth.npz")
    t_a, m_a = mouth["a"]
    eyes = np.broadcast_to(np.stack([LEFT, RIGHT]), (4, 2, 2))
    np.testing.assert_allclose(m_a, geom.mouth_features(face(4), eyes), rtol=1e-6)
    np.testing.assert_allclose(t_a, np.arange(4) / 30.0)
    m_b = mouth["b"][1]
    assert np.isnan(m_b).any(axis=1).tolist() == [False] * 3 + [True] * 4 + [False] * 2
    # frame 1 filled halfway between frames 0 and 2 (uniform 30 fps)
    np.testing.assert_allclose(m_b[1], (m_b[0] + m_b[2]) / 2, rtol=1e-5)
    skips = [line.split(",")[:3] for line in (out / "skips.csv").read_text().splitlines()]
    assert skips == [["item", "path", "reason"], ["c", "of/c.csv", "missing file"]]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["utterances_kept"] == 2 and metrics["frames"] == 13
    assert metrics["n_input"] == 3 and metrics["n_skipped"] == 1
    assert metrics["missing_share_before"] == pytest.approx(5 / 13)
    assert metrics["missing_share_after"] == pytest.approx(4 / 13)
    assert metrics["mean_fps"] == pytest.approx(30.0)


@pytest.mark.slow  # a fresh MLflow SQLite store costs about 2 s
def test_stage_fails_when_too_many_skips_and_publishes_no_mouth_npz(tracked: Path) -> None:
    manifest = write_manifest(tracked)
    manifest.write_text(manifest.read_text() + "d,s2,of/d.csv\n")  # a second missing CSV
    out = tracked / "out"
    out.mkdir()
    (out / "mouth.npz").write_bytes(b"from an earlier run")
    with pytest.raises(TooManySkipsError, match="dropped 2 of 4"):
        lm.run("demo", manifest, LandmarkParams(), BaseParams(max_skip_share=0.25), out)
    assert "d,of/d.csv,missing file" in (out / "skips.csv").read_text()
    assert not (out / "metrics.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["skips.csv"]  # no finished-looking output


@pytest.mark.slow  # a fresh MLflow SQLite store costs about 2 s
def test_audio_only_clips_are_absent_not_skipped(tracked: Path) -> None:
    manifest = write_manifest(tracked)
    text = manifest.read_text().replace("landmarks\n", "landmarks,video\n", 1)
    text = text.replace(".csv\n", ".csv,\n") + "d,s2,,\ne,s2,,\nf,s2,,\n"  # audio-only d e f
    manifest.write_text(text)
    out = tracked / "out"
    lm.run("demo", manifest, LandmarkParams(), BaseParams(max_skip_share=0.4), out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_input"] == 3 and metrics["n_skipped"] == 1  # c only; 1/3 <= 0.4
    assert metrics["absent.audio_only"] == 3
    assert "\nd," not in (out / "skips.csv").read_text()


def test_manifest_without_landmarks_column(tracked: Path) -> None:
    (tracked / "m.csv").write_text("utt_id,speaker\na,s1\n")
    with pytest.raises(ValueError, match="landmarks"):
        lm.run("demo", tracked / "m.csv", LandmarkParams(), BaseParams(), tracked / "out")


@pytest.mark.slow  # a fresh MLflow SQLite store costs about 2 s
def test_openface_times_move_onto_the_audio_clock_of_the_rows_video(tracked: Path) -> None:
    from .test_extract_sync import late_video

    manifest = write_manifest(tracked)
    video = late_video(tracked / "a.flv", delay=0.027, audio=True)
    manifest.write_text(
        f"utt_id,speaker,landmarks,video\na,s1,of/a.csv,{video}\nb,s1,of/b.csv,\nc,s2,of/c.csv,\n"
    )
    out = tracked / "out"
    lm.run("demo", manifest, LandmarkParams(), BaseParams(max_skip_share=0.5), out)
    t_a = load_mouth(out / "mouth.npz")["a"][0]
    delay = next(iter(decode_frames(video)))[0]
    np.testing.assert_allclose(t_a, np.arange(4) / 30.0 + delay)  # shifted by the video's delay
    assert load_mouth(out / "mouth.npz")["b"][0][0] == 0.0  # no video: times as in the CSV
    assert json.loads((out / "metrics.json").read_text())["videos_delayed"] == 1
