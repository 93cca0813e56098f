"""Stage ``demo``: generate the two synthetic demo corpora and write their counts."""

from __future__ import annotations

import json
from pathlib import Path

from agcc.demo import generate
from agcc.params import DemoParams


def run(dp: DemoParams, seed: int, metrics_path: Path | None = None) -> dict[str, int]:
    """Generate demo_crema and demo_improv; write their counts as JSON to ``metrics_path``."""
    counts = generate.run(dp, seed=seed)
    if metrics_path is not None:
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    return counts
