"""Parameters a stage does not read never block it; errors name the key path; `agcc check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agcc.cli import main
from agcc.errors import ConfigError
from agcc.io.corpus import Inputs, check_prepared
from agcc.params import Params, ParamsError, load_params

CORPUS = {"adapter": "crema_d", "root": "r", "landmarks_dir": "l", "textgrid_dir": "t"}


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_directions_default_to_every_ordered_pair_of_corpora() -> None:
    p = Params.model_validate({"corpora": {"a": CORPUS, "b": CORPUS, "c": CORPUS}})
    assert p.train.directions == (
        ("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")
    )  # fmt: skip
    p = Params.model_validate({"corpora": {"a": CORPUS}, "train": {"directions": None}})
    assert p.train.directions == ()  # one corpus: no direction, nothing to name


def test_stale_directions_load_and_are_named_by_key_path_where_read(tmp_path: Path) -> None:
    raw = {"corpora": {"crema_d": CORPUS}, "train": {"directions": [["crema_d", "x"]]}}
    p = load_params(_write(tmp_path / "params.yaml", raw))  # prepare & co. are not stopped
    assert p.corpus("crema_d").adapter == "crema_d"
    assert p.direction_problems() == [
        "train.directions[0][1]: unknown corpus 'x'; params.yaml corpora are ['crema_d']"
    ]
    with pytest.raises(ParamsError, match=r"train\.directions\[0\]\[1\]: unknown corpus 'x'"):
        p.check_directions()


def test_validation_errors_name_the_key_path_not_the_whole_section(tmp_path: Path) -> None:
    raw = {
        "corpora": {"c": CORPUS | {"adapter": "msp_improv", "labels": "consensus"}},
        "train": {"directions": [["c", "c", "c"]]},
    }
    with pytest.raises(ParamsError) as e:
        load_params(_write(tmp_path / "params.yaml", raw))
    lines = str(e.value).splitlines()[1:]
    assert lines[0].startswith("  corpora.c: msp_improv corpora split by session")
    assert "{" not in lines[0]  # the section's dict is not printed
    assert lines[1].startswith("  train.directions[0]: Tuple should have at most 2 items")


def test_pilot_split_order_is_validated() -> None:
    with pytest.raises(ValueError, match="pilot_split_order must be"):
        Params.model_validate({"corpora": {"a": CORPUS}, "prepare": {"pilot_split_order": ["x"]}})


def test_check_reports_counts_paths_and_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "CREMA-D"
    for name in ("1001_DFA_ANG_XX", "1001_DFA_SAD_XX", "1002_DFA_ANG_XX", "1002_DFA_FEA_XX"):
        (root / "AudioWAV").mkdir(parents=True, exist_ok=True)
        (root / "AudioWAV" / f"{name}.wav").write_bytes(b"")
    (root / "VideoFlash").mkdir()
    (root / "VideoFlash" / "1001_DFA_ANG_XX.flv").write_bytes(b"")
    (root / "VideoFlash" / "1001_DFA_SAD_XX.flv").write_bytes(b"")
    corpus = CORPUS | {
        "root": str(root),
        "landmarks_dir": str(tmp_path / "openface"),
        "textgrid_dir": str(tmp_path / "mfa"),
    }
    raw = {"corpora": {"crema_d": corpus}, "train": {"directions": [["crema_d", "demo"]]}}
    params = _write(tmp_path / "params.yaml", raw)
    out = tmp_path / "check.json"
    assert main(["--params", str(params), "check", "--json", str(out)]) == 2
    text = capsys.readouterr().out
    assert f"audio looked for in {root}/AudioWAV/*.wav" in text
    assert "clips 4: 3 kept in 4 classes, 1 dropped ({'fear': 1}), 0 skipped" in text
    assert "1 audio-only clips: no video at" in text and "1002_DFA_ANG_XX" in text
    assert "split val: 2 utterances, 1 speaker (1001)" in text
    assert "split test is empty: the test UAR" in text
    assert "0 found, 2 clips with a video but no CSV (skips)" in text
    assert "PROBLEM: landmarks would stop: 2 of 2 inputs missing" in text
    assert "PROBLEM: train.directions[0][1]: unknown corpus 'demo'" in text
    counts = json.loads(out.read_text())["crema_d"]
    assert counts | {"clips": 4, "speakers": 2, "videos": 2, "audio_only": 1} == counts


def test_train_names_the_key_path_of_a_direction_never_prepared(tmp_path: Path) -> None:
    (tmp_path / "prepared" / "crema_d").mkdir(parents=True)
    (tmp_path / "prepared" / "crema_d" / "manifest.csv").write_text("utt_id\n")
    inputs = Inputs(tmp_path / "f", tmp_path / "s", tmp_path / "prepared", tmp_path / "c")
    check_prepared(inputs, (("crema_d", "crema_d"),))
    with pytest.raises(ConfigError, match=r"train\.directions\[0\]\[1\]: corpus 'demo_crema'"):
        check_prepared(inputs, (("crema_d", "demo_crema"),))
