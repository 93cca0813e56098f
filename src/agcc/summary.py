"""Final summary of a pipeline run: where each stage's outputs are and their headline counts."""

from __future__ import annotations

import json
from pathlib import Path

STAGES = ("prepare", "landmarks", "segments")
HEADLINE = {
    "prepare": ("n_utts", "n_speakers", "n_skipped"),
    "landmarks": ("n_utts", "n_skipped"),
    "segments": ("n_segments", "n_utts", "n_skipped"),
}
FOLDERS = {"prepare": "prepared", "landmarks": "landmarks", "segments": "segments"}


def render(root: Path) -> str:
    """One line per stage and corpus with its output folder and headline metrics."""
    lines = ["agcc outputs (metrics from each stage's metrics.json):"]
    for stage in STAGES:
        base = root / "data" / FOLDERS[stage]
        for metrics in sorted(base.glob("*/metrics.json")):
            m = json.loads(metrics.read_text())
            counts = ", ".join(f"{k}={m[k]:g}" for k in HEADLINE[stage] if k in m)
            lines.append(f"  {stage:<10} {metrics.parent.name:<14} {counts}  ({metrics.parent})")
    if len(lines) == 1:
        lines.append("  nothing yet: run `dvc repro`")
    lines.append("MLflow runs: `mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`")
    return "\n".join(lines)
