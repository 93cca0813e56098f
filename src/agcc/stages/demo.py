"""Stage ``demo``: generate the two synthetic demo corpora and write their counts."""

from __future__ import annotations

from pathlib import Path

from agcc.demo import generate
from agcc.params import DemoParams
from agcc.tracking import write_metrics


def run(dp: DemoParams, seed: int, metrics_path: Path | None = None) -> dict[str, int]:
    """Generate demo_crema and demo_improv; write their counts as JSON to ``metrics_path``."""
    counts = generate.run(dp, seed=seed)
    if metrics_path is not None:
        total = sum(v for k, v in counts.items() if k.endswith("_utterances"))
        write_metrics(metrics_path, counts, {"utterances": total})
    return counts
