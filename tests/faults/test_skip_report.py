"""Skip report: kinds, details, grouping in the too-many-skips summary, formula neutralising,
and staged outputs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from agcc.skips import (
    InputError,
    SkipReport,
    TooManySkipsError,
    metric_key,
    neutralise,
    reason_kind,
    staged_outputs,
)


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("too short: 50.0 ms < 200 ms", "too_short"),
        ("missing file", "missing_file"),
        ("unreadable CSV: Error tokenizing data", "unreadable_csv"),
        ("no target vowel (AA, AH) in the phones tier", "no_target_vowel"),
        ("/data/x.wav is broken", "other"),
        ("no phones tier for speaker 'a b': speakers []", "no_phones_tier_for_speaker"),
    ],
)
def test_kind_is_the_reasons_leading_words(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind


@pytest.mark.parametrize(
    ("label", "key"),
    [("<unk>", "unk"), ("[noise]", "noise"), ("+BREATH+", "BREATH"), ("AH?", "AH"), ("a,b", "a_b")],
)
def test_metric_key_keeps_letters_digits_underscores(label: str, key: str) -> None:
    assert metric_key(label) == key


def test_summary_groups_by_kind_with_counts_and_an_example() -> None:
    report = SkipReport("segments@c", n_seen=5)
    for i in range(3):
        report.add(f"u{i}", f"/d/u{i}.TextGrid", "missing file")
    report.add_error("u3", InputError("/d/u3.wav", "too short: 10 ms", kind="too_short_audio"))
    with pytest.raises(TooManySkipsError) as e:
        report.check(0.5)
    msg = str(e.value)
    assert "dropped 4 of 5 inputs" in msg
    assert "by kind: 3x missing_file (e.g. /d/u0.TextGrid: missing file); " in msg
    assert msg.endswith("1x too_short_audio (e.g. /d/u3.wav: too short: 10 ms)")
    assert report.counts() == {"missing_file": 3, "too_short_audio": 1}


@pytest.mark.parametrize(
    "text", ["=1+1", "=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "\tx", "\rx"]
)
def test_formula_cells_get_a_leading_apostrophe(tmp_path: Path, text: str) -> None:
    assert neutralise(text) == "'" + text
    report = SkipReport("s")
    report.add(text, text, text)
    with report.write(tmp_path / "skips.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["item", "path", "reason", "kind", "detail"]
    assert rows[1][:3] == ["'" + text] * 3 and rows[1][4].startswith("'" + text)


def test_plain_cells_are_unchanged() -> None:
    assert neutralise("u1") == "u1" and neutralise("a=b") == "a=b" and neutralise("") == ""


def test_staged_outputs_move_in_on_success_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_outputs(out) as stage:
            (stage / "old.txt").write_text("new")
            raise RuntimeError("failed halfway")
    assert (out / "old.txt").read_text() == "old"
    with staged_outputs(out) as stage:
        (stage / "sub").mkdir()
        (stage / "sub" / "a.npz").write_text("a")
        (stage / "old.txt").write_text("new")
        assert not (out / "sub").exists()  # nothing visible before the block ends
    assert (out / "old.txt").read_text() == "new" and (out / "sub" / "a.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staging_left_by_a_killed_run_is_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".out.staging-999999"
    stale.mkdir()
    (stale / "half.npz").write_text("x")
    with staged_outputs(tmp_path / "out"):
        pass
    assert not stale.exists()
