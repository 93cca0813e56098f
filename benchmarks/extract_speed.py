"""Speed of the built-in extractors: dlib landmarks (frames/s) and pocketsphinx alignment (RTF).

Landmarks: every frame of a video (default: ../shared's 19.7 s, 640x360 fixture) through the
extractor of ``agcc.extract.face`` in one process (decoding, detection, 68 points), reporting
frames per second and the share of frames with a face; with ``--workers N > 1`` also the
throughput of N processes over N copies of the video (``extract_all``, model loading included).

Alignment: the twelve CREMA-D sentences spoken by espeak-ng (0.3 s of near-silence on each
side) aligned by ``agcc.extract.phones.Aligner`` with the default beams; the real-time factor is
alignment seconds / audio seconds (both passes, decoder loaded once), and the median absolute
phone-start error against espeak-ng's own phoneme events is reported alongside.

    python benchmarks/extract_speed.py
    python benchmarks/extract_speed.py --video clip.flv --workers 2 --json speed.json
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from agcc.corpora.crema_d import SENTENCES
from agcc.extract import espeak
from agcc.extract.face import ExtractorSettings, FaceLandmarker, extract_all, extract_video
from agcc.extract.phones import Aligner
from agcc.params import AlignParams
from agcc.phones import words_of

logger = logging.getLogger("extract_speed")
FIXTURE = (
    Path(__file__).resolve().parents[1].parent / "shared/fixtures/video/WolfgangLanger_Pexels.mp4"
)
PAD = 0.3


def landmark_speed(video: Path, settings: ExtractorSettings) -> dict:
    """Frames per second and face share of one video in one process (model loaded first)."""
    landmarker = FaceLandmarker(settings)
    t0 = time.perf_counter()
    table = extract_video(video, landmarker)
    seconds = time.perf_counter() - t0
    return {
        "frames": len(table),
        "seconds": seconds,
        "fps": len(table) / seconds,
        "face_share": float(table[:, 3].mean()),
    }


def parallel_speed(video: Path, settings: ExtractorSettings, workers: int) -> dict:
    """Frames per second of ``workers`` processes over as many copies of the video."""
    with tempfile.TemporaryDirectory() as tmp:
        tasks = []
        for i in range(workers):
            copy = Path(tmp) / f"v{i}{video.suffix}"
            shutil.copy(video, copy)
            tasks.append((f"v{i}", str(copy), str(Path(tmp) / f"v{i}.csv")))
        t0 = time.perf_counter()
        results = extract_all(tasks, settings, workers, "parallel")
        seconds = time.perf_counter() - t0
    frames = sum(r.n_frames for r in results)
    return {"workers": workers, "frames": frames, "seconds": seconds, "fps": frames / seconds}


def align_speed(ap: AlignParams) -> dict:
    """Real-time factor and median phone-start error on espeak-ng's CREMA-D sentences."""
    aligner = Aligner(ap)
    audio_s = align_s = 0.0
    errors: list[float] = []
    for text in SENTENCES.values():
        sp = espeak.synthesize(text)
        gap = np.zeros(int(PAD * sp.sample_rate), np.float32)
        audio = np.concatenate([gap, sp.audio, gap])
        audio += np.random.default_rng(0).normal(0, 1e-3, len(audio)).astype(np.float32)
        t0 = time.perf_counter()
        aligned = aligner.align(audio, words_of(text))
        align_s += time.perf_counter() - t0
        audio_s += len(audio) / sp.sample_rate
        errors += _phone_errors(sp, aligned.phones)
    return {
        "audio_seconds": audio_s,
        "align_seconds": align_s,
        "rtf": align_s / audio_s,
        "median_error_ms": 1000 * float(np.median(np.abs(errors))),
        "phones": len(errors),
    }


def _phone_errors(sp: espeak.Speech, phones: list) -> list[float]:
    """Aligned minus espeak start times of the phones both sequences share."""
    ref = [(p.arpabet, p.start + PAD) for p in sp.phonemes if p.arpabet]
    hyp = [(re.sub(r"\d", "", iv.label), iv.start) for iv in phones if iv.label]
    m = difflib.SequenceMatcher(a=[r[0] for r in ref], b=[h[0] for h in hyp], autojunk=False)
    return [
        hyp[b.b + k][1] - ref[b.a + k][1] for b in m.get_matching_blocks() for k in range(b.size)
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, default=FIXTURE, help="video to extract")
    parser.add_argument("--workers", type=int, default=1, help="also time N processes")
    parser.add_argument("--detect-max-side", type=int, default=640)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run both benchmarks and print the summary."""
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    settings = ExtractorSettings(detect_max_side=args.detect_max_side)
    report: dict = {"landmarks": landmark_speed(args.video, settings)}
    lm = report["landmarks"]
    print(
        f"landmarks: {lm['frames']} frames of {args.video.name} in {lm['seconds']:.1f} s = "
        f"{lm['fps']:.1f} frames/s (1 process), face in {lm['face_share']:.1%} of frames"
    )
    if args.workers > 1:
        report["parallel"] = par = parallel_speed(args.video, settings, args.workers)
        print(
            f"landmarks: {par['workers']} processes: {par['fps']:.1f} frames/s "
            f"({par['frames']} frames in {par['seconds']:.1f} s, model loading included)"
        )
    if espeak.available():
        report["align"] = al = align_speed(AlignParams())
        print(
            f"align: {al['audio_seconds']:.1f} s of speech in {al['align_seconds']:.2f} s = "
            f"real-time factor {al['rtf']:.3f}; median phone-start error "
            f"{al['median_error_ms']:.1f} ms over {al['phones']} phones"
        )
    else:
        print(
            "align: skipped, libespeak-ng not installed (apt-get install espeak-ng libespeak-ng1)"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
