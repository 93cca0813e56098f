"""agcc summary: every stage's headline numbers, rounded, and where the tables are."""

from __future__ import annotations

import json
from pathlib import Path

from agcc.stages.summary import headline_text, render


def _headline(folder: Path, values: dict) -> None:
    """Write a stage's headline.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "headline.json").write_text(json.dumps(values))


def test_summary_covers_every_stage_in_pipeline_order_with_rounded_numbers(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    _headline(tmp_path / "metrics", {"utterances": 1384.0})
    for stage in ("prepared", "landmarks", "align", "features"):
        _headline(data / stage / "demo_crema", {"utterances": 768.0, "skip_share": 0.0123})
    _headline(data / "segments" / "demo_crema", {"segments": 2692.0, "skip_share": 0.0})
    _headline(data / "cluster", {"k": 10.0, "k_elbow": 13.0, "segments": 5568.0})
    _headline(data / "analyze", {"overlap": 60.96174})
    _headline(data / "train" / "ag_cc", {"uar": 49.84123, "skip_share": 0.0})
    _headline(data / "evaluate", {"ag_cc_gain": 14.125, "new_key": 0.123456789})
    (data / "evaluate" / "table2.md").write_text("# DEMO: Table II\n")
    lines = render(tmp_path).splitlines()
    stages = [ln.split()[0] for ln in lines if ln.startswith("  ")]
    assert stages == [
        "demo", "prepare", "landmarks", "align", "segments", "features",
        "cluster", "analyze", "train", "evaluate",
    ]  # fmt: skip
    text = "\n".join(lines)
    assert "utterances 768, skipped 1.2%" in text
    assert "segments 5568, k 10, elbow k 13" in text
    assert "mean overlap 61.0%" in text and "mean test UAR 49.8%" in text
    assert "AG-CC minus source-only +14.1 pp, new_key=0.1235" in text
    assert "60.96174" not in text and "49.84123" not in text
    assert lines[0].startswith("DEMO: ") and "DEMO: Table II (UAR): data/evaluate/table2.md" in text
    assert "table1.md" not in text


def test_real_corpora_get_no_demo_label(tmp_path: Path) -> None:
    _headline(tmp_path / "data" / "prepared" / "crema_d", {"utterances": 7442.0})
    text = render(tmp_path)
    assert "DEMO" not in text and "prepare    crema_d" in text


def test_headline_text_of_unknown_keys_and_empty_project(tmp_path: Path) -> None:
    assert headline_text({"b": 2.0, "a": 1.23456}) == "a=1.235, b=2"
    assert "nothing yet" in render(tmp_path)
