"""Stage ``features``: frozen acoustic frame features at 50 frames/s (docs/method.md section 6).

The encoders, the batching and the encoding loop are :mod:`agcc.encoders`; audio is read by
:mod:`agcc.io.audio`; the frames are written by :mod:`agcc.io.features`.

Outputs in ``out_dir``: ``features.npz`` (utt_id (N,), offsets (N+1,), frames (F_total, D) or
(F_total, L, D) float16), ``meta.json``, ``skips.csv`` (unreadable, empty, silent or non-finite
audio, each named with its file) and ``metrics.json`` (utterances, seconds of audio, frames);
the extraction time and throughput go to MLflow only. features.npz and meta.json are written to
a staging folder and moved into ``out_dir`` only after the skip check passes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agcc import tracking
from agcc.encoders import N_FFT, Encoder, Stats, build_encoder, extract, probe
from agcc.framing import FRAME_RATE, SAMPLE_RATE
from agcc.io.features import FrameWriter, write_meta
from agcc.io.manifest import read_manifest
from agcc.params import BaseParams, FeatureParams
from agcc.skips import InputError, staged_outputs

log = logging.getLogger(__name__)


def _meta(fp: FeatureParams, encoder: Encoder) -> dict[str, Any]:
    """meta.json content."""
    meta = {
        "encoder": encoder.name,
        "model": fp.model if encoder.name != "logmel" else f"logmel{fp.n_mels}",
        "layer": fp.layer,
        "n_layers": encoder.n_layers,
        "dim": encoder.dim,
        "frame_rate": FRAME_RATE,
        "sample_rate": SAMPLE_RATE,
        "utterance_norm": fp.utterance_norm,
    }
    if encoder.name == "logmel":
        meta |= {"n_mels": fp.n_mels, "window_ms": 25.0, "hop_ms": 20.0, "n_fft": N_FFT}
    return meta


def run(name: str, manifest: Path, fp: FeatureParams, base: BaseParams, out_dir: Path) -> Stats:
    """Encode every utterance of one corpus's manifest and write the features to ``out_dir``."""
    out_dir = Path(out_dir)
    with tracking.corpus_stage_run(
        "features", name, fp.model_dump() | {"corpus": name}, out_dir, base.max_skip_share
    ) as st:
        log.info("reading manifest %s", manifest)
        frame = read_manifest(manifest)
        if frame.empty:
            raise InputError(manifest, "empty manifest: no utterance to encode")
        st.skips.n_seen = len(frame)
        log.info("loading the %s encoder", fp.encoder)
        encoder = build_encoder(fp)
        items = probe(frame, st.skips)
        log.info(
            "encoding %d utterances (%.0f s of audio)", len(items), sum(it.seconds for it in items)
        )
        with staged_outputs(out_dir) as staging:  # published only if the skip check passes
            writer = FrameWriter(staging / "features.npz")
            try:
                stats = extract(
                    items, encoder, writer, st.skips, fp.batch_seconds, fp.utterance_norm
                )
            except BaseException:
                writer.discard()
                raise
            tail = (encoder.dim,) if fp.layer != "all" else (encoder.n_layers, encoder.dim)
            n_frames = writer.close(tail)
            st.log_artifact(write_meta(staging, _meta(fp, encoder)))
            st.skips.check(base.max_skip_share)
        audio_s = stats.samples / SAMPLE_RATE
        st.metrics |= {
            "n_utts": stats.n_utts,
            "audio_seconds": round(audio_s, 3),
            "n_frames": n_frames,
            "dim": encoder.dim,
        }
        st.headline["utterances"] = stats.n_utts
        # wall-clock numbers go to MLflow only: a DVC output is a function of code, data, params
        throughput = audio_s / max(stats.seconds, 1e-9)
        st.log_metrics({"extract_seconds": stats.seconds, "throughput": throughput})
        log.info(
            "%s: %d utterances, %.0f s of audio, %d frames, %.1f s of audio per second",
            name,
            stats.n_utts,
            audio_s,
            n_frames,
            throughput,
        )
    return stats
