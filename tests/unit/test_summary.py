"""agcc summary: headline counts per stage and where the tables are."""

from __future__ import annotations

import json
from pathlib import Path

from agcc.stages.summary import render


def test_summary_lists_stage_counts_and_tables(tmp_path: Path) -> None:
    seg = tmp_path / "data" / "segments" / "c1"
    seg.mkdir(parents=True)
    (seg / "metrics.json").write_text(json.dumps({"n_segments": 12, "n_utts": 3, "n_skipped": 1}))
    (tmp_path / "data" / "cluster").mkdir(parents=True)
    (tmp_path / "data" / "cluster" / "metrics.json").write_text(json.dumps({"k_chosen": 10}))
    (tmp_path / "data" / "evaluate").mkdir(parents=True)
    (tmp_path / "data" / "evaluate" / "table2.md").write_text("|x|")
    text = render(tmp_path)
    assert "segments   c1" in text and "n_segments=12" in text and "n_skipped=1" in text
    assert "cluster    all corpora" in text and "k_chosen=10" in text
    assert "data/evaluate/table2.md" in text and "table1.md" not in text


def test_summary_of_an_empty_project(tmp_path: Path) -> None:
    assert "nothing yet" in render(tmp_path)
