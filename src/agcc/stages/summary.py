"""Final summary of a pipeline run: every stage's outputs, with its headline numbers rounded.

What ``make demo`` prints at the end (``agcc summary``). One line per stage and corpus (or
method), in pipeline order, from the ``headline.json`` each stage writes beside its
metrics.json (the numbers ``dvc metrics show`` tabulates), then where the tables and figures
are. UARs and overlaps are percentages, the AG-CC gain is in percentage points.
"""

from __future__ import annotations

import json
from pathlib import Path

from agcc.figures import demo_prefix

#: (stage, folder under the root, whether it has one sub-folder per corpus or method).
STAGES = (
    ("demo", "metrics", False),
    ("prepare", "data/prepared", True),
    ("landmarks", "data/landmarks", True),
    ("align", "data/align", True),
    ("segments", "data/segments", True),
    ("features", "data/features", True),
    ("cluster", "data/cluster", False),
    ("analyze", "data/analyze", False),
    ("train", "data/train", True),
    ("evaluate", "data/evaluate", False),
)
#: headline key -> (label, format) in the order shown; other keys are shown as key=value.
LABELS = {
    "utterances": ("utterances", "{:.0f}"),
    "segments": ("segments", "{:.0f}"),
    "k": ("k", "{:.0f}"),
    "k_elbow": ("elbow k", "{:.0f}"),
    "overlap": ("mean overlap", "{:.1f}%"),
    "uar": ("mean test UAR", "{:.1f}%"),
    "ag_cc_gain": ("AG-CC minus source-only", "{:+.1f} pp"),
    "dev_uar": ("best dev UAR", "{:.1f}%"),
    "skip_share": ("skipped", "{:.1%}"),
}
TABLES = (
    ("Table I (AG cluster overlap)", "data/analyze/table1.md"),
    ("Fig. 1 / Fig. 2", "data/analyze/fig1.png, data/analyze/fig2.png"),
    ("Table II (UAR)", "data/evaluate/table2.md, data/evaluate/table2.png"),
)


def headline_text(headline: dict[str, float]) -> str:
    """The headline numbers as ``label value`` pairs, rounded, in :data:`LABELS` order."""
    known = [
        f"{label} {fmt.format(float(headline[k]))}"
        for k, (label, fmt) in LABELS.items()
        if k in headline
    ]
    other = [f"{k}={float(v):.4g}" for k, v in sorted(headline.items()) if k not in LABELS]
    return ", ".join(known + other)


def stage_lines(root: Path) -> list[str]:
    """One line per stage and corpus (or method) that has written its headline."""
    lines = []
    for stage, folder, per_item in STAGES:
        pattern = "*/headline.json" if per_item else "headline.json"
        for path in sorted((root / folder).glob(pattern)):
            name = path.parent.name if per_item else "all"
            text = headline_text(json.loads(path.read_text()))
            lines.append(f"  {stage:<10} {name:<14} {text}  ({path.parent.relative_to(root)})")
    return lines


def render(root: Path) -> str:
    """The summary: a DEMO warning for demo corpora, the stage lines, tables and MLflow."""
    lines = stage_lines(root)
    corpora = [p.name for p in (root / "data" / "prepared").glob("*") if p.is_dir()]
    demo = demo_prefix(corpora)
    head = "agcc outputs (headline numbers of each stage's headline.json):"
    out = [f"{demo}{head}"] + (lines or ["  nothing yet: run `dvc repro`"])
    if demo:
        out.append("DEMO corpora: a simulation; no number here is a result on real corpora.")
    for label, rel in TABLES:
        if (root / rel.split(",")[0]).exists():
            out.append(f"{demo}{label}: {rel}")
    out.append(
        "MLflow runs: `mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`, then open "
        "http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (docs/mlflow.md)"
    )
    return "\n".join(out)
