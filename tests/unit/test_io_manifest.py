"""manifest.csv reader and writer: text cells, required columns named with the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from agcc.errors import DataError, MissingInputError
from agcc.io.manifest import MANIFEST_COLUMNS, read_manifest, write_manifest


def test_numeric_ids_and_empty_cells_stay_text(tmp_path: Path) -> None:
    row = dict.fromkeys(MANIFEST_COLUMNS, "") | {"utt_id": "0012", "speaker": "1001"}
    path = write_manifest(pd.DataFrame([row]), tmp_path / "manifest.csv")
    frame = read_manifest(path)
    assert frame.loc[0, "utt_id"] == "0012" and frame.loc[0, "speaker"] == "1001"
    assert frame.loc[0, "textgrid"] == "" and all(isinstance(v, str) for v in frame.iloc[0])
    assert tuple(frame.columns) == MANIFEST_COLUMNS
    assert not list(tmp_path.glob(".*.tmp"))


def test_missing_columns_and_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    pd.DataFrame({"utt_id": ["1"], "audio": ["a.wav"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"m\.csv: not a manifest, missing columns \['corpus'"):
        read_manifest(path)
    assert list(read_manifest(path, required=("utt_id",)).columns) == ["utt_id", "audio"]
    with pytest.raises(MissingInputError, match="nope.csv: no such manifest"):
        read_manifest(tmp_path / "nope.csv")


def test_old_manifests_get_an_empty_video_column(tmp_path: Path) -> None:
    cols = [c for c in MANIFEST_COLUMNS if c != "video"]
    path = write_manifest(pd.DataFrame([dict.fromkeys(cols, "x")]), tmp_path / "old.csv")
    frame = read_manifest(path)
    assert tuple(frame.columns) == MANIFEST_COLUMNS and frame.loc[0, "video"] == ""


def test_formula_cells_are_neutralised_on_disk_and_restored_on_reading(tmp_path: Path) -> None:
    cells = ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "plain", "it's"]
    frame = pd.DataFrame(dict.fromkeys(MANIFEST_COLUMNS, cells))
    path = write_manifest(frame, tmp_path / "m.csv")
    on_disk = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert on_disk["transcript"].tolist() == [
        '\'=HYPERLINK("x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "plain",
        "it's",
    ]
    assert read_manifest(path)["transcript"].tolist() == cells
