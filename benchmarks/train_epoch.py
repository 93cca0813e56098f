"""Cost of the AG-anchored loss: one training epoch with and without L_AG on the same data.

Builds two synthetic corpora in memory at the demo's size (480 source and 265 target training
utterances of 60-200 frames x 80 log-mel dims, 3-4 vowel segments each, k = 10 AG clusters, 7
common), then times, for the same model initialisation and batches:

* ``with L_AG``: source + target utterances per step, triplet mining, segment pooling and the
  soft-weighted triplet loss (``ag_cc``). Anchors use the true target labels (``oracle``), so
  every target segment of a common cluster is a candidate: the most triplets, the worst case.
* ``without L_AG``: the same source + target batches through the same forward and backward pass,
  with no anchoring term.
* ``source only``: source batches alone (the ``source_only`` baseline), for reference.

It prints the median epoch time of each over ``--repeats`` and the ratios; target (docs/method.md
section 10 / the train stage's budget): with / without L_AG <= 1.3.

    python benchmarks/train_epoch.py                  # demo model (params.yaml), 3 repeats
    python benchmarks/train_epoch.py --quick          # smaller corpora, 1 repeat
    python benchmarks/train_epoch.py --d-model 128 --n-heads 4 --fc-hidden 128 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from agcc.devices import resolve_device
from agcc.models import SERModel
from agcc.params import VOWELS, load_params
from agcc.training.anchoring import Anchoring
from agcc.training.data import CorpusData, Segments
from agcc.training.trainer import configure_threads, input_stats, model_config, train_epoch

logger = logging.getLogger("train_epoch")
REPO = Path(__file__).resolve().parents[1]


def fake_corpus(name: str, n_train: int, dim: int, k: int, seed: int) -> CorpusData:
    """A corpus of n_train training utterances (60-200 frames) with 3-4 segments each."""
    rng = np.random.default_rng(seed)
    length = rng.integers(60, 201, n_train)
    start = np.concatenate([[0], np.cumsum(length)[:-1]])
    labels = rng.integers(0, 4, n_train)
    frames = rng.normal(0, 1, (int(length.sum()), dim)) + np.repeat(labels, length)[:, None]
    n_seg = rng.integers(3, 5, n_train)
    row = np.repeat(np.arange(n_train), n_seg)
    lo = (rng.random(len(row)) * (length[row] - 8)).astype(np.int64)
    segments = Segments(
        seg_id=np.array([f"{name}#{i}" for i in range(len(row))]),
        row=row,
        lo=lo,
        hi=lo + rng.integers(3, 8, len(row)),
        vowel=rng.integers(0, len(VOWELS), len(row)),
        cluster=rng.integers(0, k, len(row)),
        ptr=np.concatenate([[0], np.cumsum(n_seg)]),
    )
    return CorpusData(
        name=name,
        utt_ids=np.array([f"{name}_{i}" for i in range(n_train)]),
        labels=labels,
        splits=np.full(n_train, "train"),
        start=start,
        length=length,
        frames=frames.astype(np.float16),
        segments=segments,
        mouth_val={},
        features_path=Path(f"{name}/features.npz"),
        manifest_path=Path(f"{name}/manifest.csv"),
    )


def time_epochs(args: argparse.Namespace) -> dict[str, list[float]]:
    """Epoch times (s) of each variant, interleaved over the repeats."""
    tp = load_params(REPO / "params.yaml").train.model_copy(
        update={
            k: v
            for k, v in vars(args).items()
            if k in ("d_model", "n_heads", "fc_hidden", "batch_size") and v is not None
        }
        | {"oracle": True}
    )
    n_src, n_tgt = (160, 90) if args.quick else (480, 265)
    src, tgt = fake_corpus("src", n_src, 80, 10, 1), fake_corpus("tgt", n_tgt, 80, 10, 2)
    device = resolve_device(args.device)
    configure_threads(device) if args.threads is None else torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    dist = rng.uniform(0.5, 3.0, (10, 10))
    as_t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    common = np.arange(10) < 7
    variants = {
        "with L_AG": (
            tgt,
            Anchoring(
                "triplet",
                "cluster",
                as_t((dist + dist.T) / 2).float(),
                as_t(common),
                oracle=True,
                hyper=tp.ag_cc,  # ag_cc's own gamma, alpha, beta (train.ag_cc)
            ),
        ),
        "without L_AG": (tgt, Anchoring("none")),
        "source only": (None, Anchoring("none")),
    }
    config = model_config(tp, (80,), 4)
    stats = [s.to(device) for s in input_stats(src, np.arange(n_src))]
    times: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(args.repeats + 1):  # the first round warms up and is not counted
        for name, (target, anchoring) in variants.items():
            torch.manual_seed(0)
            model = SERModel(config).to(device)
            model.set_input_stats(*stats)
            opt = torch.optim.Adam(model.parameters(), lr=tp.lr)
            gen = torch.Generator().manual_seed(rep)
            t0 = time.perf_counter()
            train_epoch(model, opt, src, target, anchoring, tp, np.random.default_rng(rep), gen)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if rep:
                times[name].append(time.perf_counter() - t0)
        logger.info("round %d/%d done", rep, args.repeats)
    return times


def main() -> None:
    """Parse arguments, time the variants, print (and optionally save) the result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller corpora, 1 repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--threads", type=int, help="torch threads (default: the train stage's)")
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--n-heads", type=int)
    ap.add_argument("--fc-hidden", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    if args.quick:
        args.repeats = 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    times = time_epochs(args)
    med = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "epoch_seconds": {k: round(v, 3) for k, v in med.items()},
        "ratio_with_vs_without_L_AG": round(med["with L_AG"] / med["without L_AG"], 3),
        "ratio_with_L_AG_vs_source_only": round(med["with L_AG"] / med["source only"], 3),
        "threads": torch.get_num_threads(),
        "target": "ratio_with_vs_without_L_AG <= 1.3",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
