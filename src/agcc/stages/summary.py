"""Final summary of a pipeline run: where each stage's outputs are and their headline counts."""

from __future__ import annotations

import json
from pathlib import Path

STAGES = ("prepare", "landmarks", "segments", "features", "cluster", "analyze")
HEADLINE = {
    "prepare": ("n_utts", "n_speakers", "n_skipped"),
    "landmarks": ("utterances_kept", "missing_share_after", "n_skipped"),
    "segments": ("n_segments", "n_utts", "n_skipped"),
    "features": ("n_utts", "audio_seconds", "n_skipped"),
    "cluster": ("k_chosen", "k_elbow", "inertia"),
    "analyze": ("avg_overlap.all.AA", "avg_overlap.all.IY"),
}
FOLDERS = {s: s for s in STAGES} | {"prepare": "prepared"}
TABLES = (
    ("Table I (AG cluster overlap)", "data/analyze/table1.md"),
    ("Fig. 1 / Fig. 2", "data/analyze/fig1.png, data/analyze/fig2.png"),
    ("Table II (UAR; demo numbers say nothing about real corpora)", "data/evaluate/table2.md"),
)
# stages with one output folder for all corpora (the others have one per corpus)
SINGLE = {"cluster", "analyze"}


def render(root: Path) -> str:
    """One line per stage and corpus with its output folder and headline metrics."""
    lines = ["agcc outputs (metrics from each stage's metrics.json):"]
    for stage in STAGES:
        base = root / "data" / FOLDERS[stage]
        pattern = "metrics.json" if stage in SINGLE else "*/metrics.json"
        for metrics in sorted(base.glob(pattern)):
            m = json.loads(metrics.read_text())
            counts = ", ".join(f"{k}={m[k]:g}" for k in HEADLINE[stage] if k in m)
            name = "all corpora" if stage in SINGLE else metrics.parent.name
            lines.append(f"  {stage:<10} {name:<14} {counts}  ({metrics.parent})")
    if len(lines) == 1:
        lines.append("  nothing yet: run `dvc repro`")
    for label, rel in TABLES:
        if (root / rel.split(",")[0]).exists():
            lines.append(f"{label}: {rel}")
    lines.append("MLflow runs: `mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`")
    return "\n".join(lines)
