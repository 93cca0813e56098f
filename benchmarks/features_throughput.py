"""Feature extraction throughput: the whole path against the bare model forward pass.

Writes seeded synthetic utterances (1.5-4 s, voiced-like tones plus noise, half at 22,050 Hz and
half at 44,100 Hz, 16-bit WAV), saves a randomly initialised wav2vec2-base-sized model
(``Wav2Vec2Config()`` defaults, no download; its feature extractor has no attention mask, like
facebook/wav2vec2-base) or the tiny 2-layer test model, and loads it through the stage's
``HFEncoder``. Both timings use the same length-sorted batches, cut by the stage's rule
(``agcc.encoders.encoder_batches``):

- bare: the model forward pass alone (``HFEncoder.forward`` under ``torch.inference_mode``) on
  inputs prepared beforehand;
- whole: ``agcc.encoders.extract`` from the files (header probe, soundfile read, soxr
  resampling
  to 16 kHz, mono mix, batching, waveform normalisation, forward, cutting to the 50 frames/s grid,
  float16 storage) plus writing features.npz.

The ratio bare / whole is the share of the bare forward throughput the stage keeps; target
(docs/method.md section 10): >= 0.9. Each timing is repeated (alternating) and the best is kept.
On a shared machine the two long timings drift with the load, so the report adds a steadier
estimate: the whole path with the forward pass replaced by zeros of the right shape measures
everything else (the overhead), and bare / (bare + overhead) is the ratio it implies.

    python benchmarks/features_throughput.py                 # base-sized, 48 utterances
    python benchmarks/features_throughput.py --quick         # base-sized, 12 utterances
    python benchmarks/features_throughput.py --model tiny    # the 2-layer test model
    python benchmarks/features_throughput.py --device cuda --n 400
    python benchmarks/features_throughput.py --device cuda --n 400 --dtype bfloat16

Batch statistics are printed next to the throughput, for the stage's rule, for the rule before
it (every utterance >= 90 % of its batch's longest, also for batch-invariant encoders) and for
the 1 % rule (every utterance >= 99 % of its batch's longest, which models whose frames feel the
padding get): number of batches, mean and smallest seconds of audio per batch, and the padding
share. The base-sized model is group-normalised and its feature extractor returns no attention
mask, like facebook/wav2vec2-base; the stage makes it batch-invariant (``MaskedGroupNorm`` in
its first CNN layer, and the attention mask built from the lengths), so its batches fill to
``--batch-seconds`` (before that it had the 1 % rule's batches, which fill only as far as the
corpus is dense in durations). ``--mask`` gives it the layer-norm variant with an attention mask
instead. ``--compare-rules`` also times the bare forward pass on the old rule's and the 1 %
rule's batches.

    python benchmarks/features_throughput.py --batch-seconds 240 --compare-rules

A third timing, the plain forward pass on ``--plain-batch`` random clips of 4 s (the model's
speed with large batches, no corpus), is the reference for the GPU goal of >= 8,000 s of audio
per s on an H200-class card (128 x 4 s, TF32: ``--device cuda --plain-batch 128``). It runs the
stock model without a mask; for a model that takes the mask the same clips are also timed as
the stage feeds them (mask, and ``MaskedGroupNorm`` for a group-normalised CNN), which prices
batch invariance.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from agcc.encoders import (
    MIN_FILL_UNMASKED,
    HFEncoder,
    batch_stats,
    conv_output_length,
    encoder_batches,
    extract,
    make_batches,
    probe,
    save_random_wav2vec2,
)
from agcc.framing import SAMPLE_RATE
from agcc.io.audio import read_audio
from agcc.io.features import FrameWriter
from agcc.skips import SkipReport

logger = logging.getLogger("features_throughput")


def write_corpus(folder: Path, n: int, seed: int) -> pd.DataFrame:
    """n seeded WAV files (1.5-4 s, 22,050 or 44,100 Hz); returns a manifest (utt_id, audio)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rate = (22050, 44100)[i % 2]
        t = np.arange(int(rng.uniform(1.5, 4.0) * rate)) / rate
        f0 = rng.uniform(90, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        voiced = sum(np.sin(h * phase) / h for h in range(1, 12))
        wave = 0.1 * voiced + rng.normal(0, 0.01, len(t))
        path = folder / f"utt{i:04d}.wav"
        sf.write(path, (0.8 * wave / np.abs(wave).max()).astype(np.float32), rate, "PCM_16")
        rows.append({"utt_id": path.stem, "audio": str(path)})
    return pd.DataFrame(rows)


def save_model(folder: Path, kind: str, mask: bool = False) -> Path:
    """A randomly initialised wav2vec2-base-sized ("base") or 2-layer ("tiny") checkpoint; the
    base one without an attention mask (like facebook/wav2vec2-base) unless ``mask``."""
    return save_random_wav2vec2(folder, kind, with_mask=mask or kind != "base")


def rule_batches(
    encoder: HFEncoder, seconds: np.ndarray, batch_seconds: float
) -> dict[str, list[np.ndarray]]:
    """Batches by the stage's rule ("stage"), by the rule before it ("old": every utterance
    >= min_fill x its batch's longest, for every encoder) and by the 1 % rule ("one_percent":
    every utterance >= 99 % of its batch's longest, what models whose frames feel the padding
    get, wav2vec2-base among them before MaskedGroupNorm)."""
    return {
        "stage": encoder_batches(seconds, batch_seconds, encoder),
        "old": make_batches(seconds, batch_seconds, encoder.min_fill, per_item=True),
        "one_percent": make_batches(seconds, batch_seconds, MIN_FILL_UNMASKED, per_item=True),
    }


def rounded_stats(seconds: np.ndarray, batches: list[np.ndarray]) -> dict:
    """:func:`agcc.encoders.batch_stats`, rounded for the report."""
    return {k: round(v, 4) for k, v in batch_stats(seconds, batches).items()}


def time_bare(encoder: HFEncoder, inputs: list[dict[str, torch.Tensor]]) -> float:
    """Seconds of the forward passes alone over prepared batch inputs."""
    sync = torch.cuda.synchronize if encoder.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for batch in inputs:
            encoder.forward(**batch)
    sync()
    return time.perf_counter() - t0


def time_whole(encoder: HFEncoder, frame: pd.DataFrame, out: Path, batch_seconds: float) -> float:
    """Seconds of the stage's path: probe, read, resample, batch, encode, store, write npz."""
    t0 = time.perf_counter()
    skips = SkipReport("benchmark")
    items = probe(frame, skips)
    writer = FrameWriter(out / "features.npz")
    extract(items, encoder, writer, skips, batch_seconds)
    writer.close((encoder.dim,))
    if skips.n_skipped:
        raise RuntimeError(f"benchmark audio was skipped: {skips.skips[:3]}")
    return time.perf_counter() - t0


def time_overhead(
    encoder: HFEncoder, frame: pd.DataFrame, out: Path, batch_seconds: float
) -> float:
    """Seconds of the whole path with the forward pass stubbed by zeros (B, F, D)."""

    def stub(**inputs: torch.Tensor) -> torch.Tensor:
        x = inputs["input_values"]  # (B, L)
        n = int(conv_output_length(torch.tensor(x.shape[1]), encoder.kernels, encoder.strides))
        return torch.zeros((x.shape[0], n, encoder.dim), device=x.device)

    encoder.forward = stub  # type: ignore[method-assign]
    try:
        return time_whole(encoder, frame, out, batch_seconds)
    finally:
        del encoder.forward  # back to the class's method


def time_rule(
    encoder: HFEncoder, waves: list[np.ndarray], batches: list[np.ndarray], repeats: int
) -> float:
    """Best seconds of the bare forward passes on another rule's batches (after a warm-up)."""
    inputs = [encoder.inputs([waves[i] for i in b]) for b in batches]
    time_bare(encoder, inputs)
    return min(time_bare(encoder, inputs) for _ in range(repeats))


def time_plain(encoder: HFEncoder, batch: int, repeats: int, stage: bool = False) -> float:
    """Best seconds of one forward pass on ``batch`` random 4 s clips: the stock model without a
    mask, or with ``stage`` the inputs the stage makes of them (normalised, with the mask where
    the model takes one)."""
    x = torch.randn((batch, 4 * SAMPLE_RATE), generator=torch.Generator().manual_seed(0))
    inputs = {"input_values": x.to(encoder.device)}
    if stage:
        inputs = encoder.inputs(list(x.numpy()))
    time_bare(encoder, [inputs])  # warm-up
    return min(time_bare(encoder, [inputs]) for _ in range(repeats))


def describe_model(encoder: HFEncoder) -> str:
    """How the stage runs ``encoder``'s model, for the log."""
    if encoder.group_norm is not None:
        return "batch-invariant: masked group norm and attention mask"
    if encoder.batch_invariant:
        return "batch-invariant: layer norm and attention mask"
    return "frames feel the padding: 1 % rule"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("base", "tiny"), default="base")
    parser.add_argument("--n", type=int, default=48, help="utterances (default 48)")
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2, help="timings of each kind; best kept")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument(
        "--mask", action="store_true", help="base model: layer-norm variant with an attention mask"
    )
    parser.add_argument(
        "--compare-rules", action="store_true", help="also time bare on the old rule's batches"
    )
    parser.add_argument(
        "--plain-batch", type=int, default=4, help="clips of 4 s in the plain timing (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="12 utterances, 1 repeat")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 12, 1
    return args


def run(args: argparse.Namespace, work: Path) -> dict:
    """Build data and model in ``work``, time both paths, return the report."""
    frame = write_corpus(work, args.n, args.seed)
    model = str(save_model(work / "model", args.model, args.mask))
    encoder = HFEncoder(model, -1, torch.device(args.device), args.dtype)
    items = probe(frame, SkipReport("benchmark"))
    seconds = np.array([it.seconds for it in items])
    rules = rule_batches(encoder, seconds, args.batch_seconds)
    batches = rules["stage"]
    waves = [read_audio(it.path) for it in items]
    inputs = [encoder.inputs([waves[i] for i in b]) for b in batches]
    audio_s = sum(len(w) for w in waves) / SAMPLE_RATE
    logger.info(
        "%d utterances, %.1f s of audio, %d batches, %s model (%s) on %s",
        len(items),
        audio_s,
        len(batches),
        args.model,
        describe_model(encoder),
        args.device,
    )
    time_bare(encoder, inputs)  # warm-up: every batch shape once (kernel selection, caches)
    bare, whole, over = [], [], []
    for r in range(args.repeats):
        first, second = (bare, whole) if r % 2 == 0 else (whole, bare)  # alternate the order
        for kind in (first, second):
            if kind is bare:
                bare.append(time_bare(encoder, inputs))
            else:
                whole.append(time_whole(encoder, frame, work / f"out{r}", args.batch_seconds))
        over.append(time_overhead(encoder, frame, work / f"stub{r}", args.batch_seconds))
        logger.info(
            "repeat %d: bare %.2f s, whole %.2f s, overhead %.2f s",
            r + 1,
            bare[-1],
            whole[-1],
            over[-1],
        )
    best_bare, best_whole, overhead = min(bare), min(whole), min(over)
    other = {
        k: audio_s / time_rule(encoder, waves, rules[k], args.repeats)
        for k in (("old", "one_percent") if args.compare_rules else ())
    }
    plain = time_plain(encoder, args.plain_batch, args.repeats) if args.plain_batch else None
    plain_stage = (
        time_plain(encoder, args.plain_batch, args.repeats, stage=True)
        if args.plain_batch and encoder.use_mask
        else None
    )
    return {
        "model": args.model,
        "batch_invariant": encoder.batch_invariant,
        "masked_group_norm": encoder.group_norm is not None,
        "device": args.device,
        "dtype": args.dtype,
        "batch_seconds": args.batch_seconds,
        "batches": {k: rounded_stats(seconds, b) for k, b in rules.items()},
        "bare_throughput_old_rule": round(other["old"], 2) if other else None,
        "bare_throughput_one_percent_rule": round(other["one_percent"], 2) if other else None,
        "plain_batch": args.plain_batch,
        "plain_throughput": round(args.plain_batch * 4.0 / plain, 2) if plain else None,
        "plain_throughput_stage_inputs": (
            round(args.plain_batch * 4.0 / plain_stage, 2) if plain_stage else None
        ),
        "n_utts": len(items),
        "audio_seconds": round(audio_s, 2),
        "n_batches": len(batches),
        "bare_seconds": round(best_bare, 3),
        "whole_seconds": round(best_whole, 3),
        "bare_throughput": round(audio_s / best_bare, 2),
        "whole_throughput": round(audio_s / best_whole, 2),
        "ratio": round(best_bare / best_whole, 4),
        "overhead_seconds": round(overhead, 3),
        "ratio_from_overhead": round(best_bare / (best_bare + overhead), 4),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print the summary."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = run(args, Path(tmp))
    print(json.dumps(report, indent=2))
    print(
        f"whole path keeps {report['ratio']:.1%} of the bare forward throughput "
        f"({report['whole_throughput']:.1f} vs {report['bare_throughput']:.1f} s of audio per s)"
        "   target >= 90%"
    )
    print(
        f"non-forward work takes {report['overhead_seconds']:.2f} s: "
        f"bare / (bare + overhead) = {report['ratio_from_overhead']:.1%}"
    )
    for rule, st in report["batches"].items():
        print(
            f"batches ({rule} rule): {st['n_batches']} of {st['mean_seconds']:.1f} s of audio on "
            f"average ({st['mean_seconds'] / report['batch_seconds']:.1%} of batch_seconds "
            f"{report['batch_seconds']:g}), min {st['min_seconds']:.1f} s, padding "
            f"{st['padding_share']:.2%} (at most {st['max_item_padding']:.2%} of a batch's longest)"
        )
    if report["bare_throughput_old_rule"] is not None:
        print(
            f"bare forward on the old rule's batches: {report['bare_throughput_old_rule']:.1f} s "
            f"of audio per s, on the 1 % rule's: {report['bare_throughput_one_percent_rule']:.1f}"
            f" (stage's rule: {report['bare_throughput']:.1f})"
        )
    if report["plain_throughput"] is not None:
        print(
            f"plain forward, {report['plain_batch']} x 4 s clips: "
            f"{report['plain_throughput']:.1f} s of audio per s   target on an H200-class GPU "
            "(128 clips, TF32): >= 8,000"
        )
    if report["plain_throughput_stage_inputs"] is not None:
        print(
            f"plain forward as the stage feeds it (mask, masked group norm where group-normalised):"
            f" {report['plain_throughput_stage_inputs']:.1f} s of audio per s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
