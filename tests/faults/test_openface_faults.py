"""Faults in OpenFace CSVs, met by the landmarks stage: each CSV is skipped, named, counted.

Strict reading (:mod:`agcc.io.openface`): a cut or short row, or a NaN or infinite value, is an
error for that file, never a value read as if complete.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agcc.io.mouth import load_mouth
from agcc.io.openface import read_openface_csv
from agcc.skips import InputError
from tests.faults.conftest import CORPUS, UTTS, Corpus, assert_skipped, read_skips

RUN = f"landmarks:{CORPUS}"


def _cut_last_number(path: Path) -> None:
    """Cut the file inside the last number of its last row (150.0 -> 15), no line end."""
    text = path.read_text().rstrip("\n")
    path.write_text(text[:-3])


def _short_row(path: Path) -> None:
    """Drop the last ten fields of row 30."""
    lines = path.read_text().splitlines(keepends=True)
    lines[30] = ",".join(lines[30].split(",")[:-10]) + "\n"
    path.write_text("".join(lines))


def _value(text: str) -> object:
    """Replace one mouth point value of row 20 with ``text``."""

    def fault(path: Path) -> None:
        lines = path.read_text().splitlines(keepends=True)
        header = [c.strip() for c in lines[0].split(",")]
        fields = lines[20].rstrip("\n").split(",")
        fields[header.index("x_50")] = f" {text}"
        lines[20] = ",".join(fields) + "\n"
        path.write_text("".join(lines))

    return fault


def _all_failed(path: Path) -> None:
    """Every frame success 0 (no face found in any frame)."""
    lines = path.read_text().splitlines(keepends=True)
    header = [c.strip() for c in lines[0].split(",")]
    col = header.index("success")
    for i in range(1, len(lines)):
        fields = lines[i].split(",")
        fields[col] = " 0"
        lines[i] = ",".join(fields)
    path.write_text("".join(lines))


FAULTS = {
    "csv_last_row_cut_mid_number": (_cut_last_number, "malformed_csv", "truncated CSV"),
    "csv_short_row": (_short_row, "malformed_csv", "line 31 has"),
    "csv_nan_value": (_value("nan"), "non_finite_landmarks", "non-finite value nan"),
    "csv_inf_value": (_value("inf"), "non_finite_landmarks", "non-finite value inf"),
    "csv_face_lost_whole_utterance": (_all_failed, "all_frames_failed", "all frames failed"),
    "csv_missing": (lambda p: p.unlink(), "missing_file", "missing file"),
}


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_bad_landmark_csv_is_skipped_and_named(
    corpus: Corpus, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert corpus.landmarks("base") == 0
    assert read_skips(corpus.root / "base").empty
    fault, kind, reason = FAULTS[case]
    path = corpus.file("u1", "csv")
    fault(path)
    assert corpus.landmarks() == 0
    skips = assert_skipped(corpus.root / "lm", RUN, "u1", kind, path, caplog)
    assert reason in skips.iloc[0]["reason"]
    before, after = (
        load_mouth(corpus.root / "base" / "mouth.npz"),
        load_mouth(corpus.root / "lm" / "mouth.npz"),
    )
    assert set(after) == set(UTTS) - {"u1"}
    for utt in after:
        np.testing.assert_array_equal(after[utt][0], before[utt][0])
        np.testing.assert_array_equal(after[utt][1], before[utt][1])


def test_cut_number_would_otherwise_read_as_a_value(corpus: Corpus) -> None:
    """The fault is real: without the check the cut row parses, with a wrong last value."""
    import pandas as pd

    path = corpus.file("u1", "csv")
    _cut_last_number(path)
    table = pd.read_csv(path, skipinitialspace=True)
    assert not table.iloc[-1].isna().any() and table.iloc[-1, -1] == 15  # was 150.0
    with pytest.raises(InputError, match=r"last row \(line 61\) ends without a line end .*'15'"):
        read_openface_csv(path, 0.5)


def test_complete_csv_without_final_line_end_is_read(corpus: Corpus) -> None:
    path = corpus.file("u1", "csv")
    path.write_text(path.read_text().rstrip("\n"))
    assert len(read_openface_csv(path, 0.5).time) == 60
