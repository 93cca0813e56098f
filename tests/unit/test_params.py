"""params.yaml validation: the shipped file is valid; unknown keys and bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agcc.errors import ConfigError
from agcc.params import Params, ParamsError, load_params

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_shipped_params_are_valid() -> None:
    p = load_params(REPO / "params.yaml")
    assert set(p.corpora) == {"demo_crema", "demo_improv"}
    assert p.corpus("demo_improv").split_by == "session"
    assert abs(sum(p.prepare.split_fractions.values()) - 1) < 1e-9


def test_unknown_key_is_an_error_naming_it(tmp_path: Path, raw: dict) -> None:
    raw["segments"]["fsp"] = 30
    with pytest.raises(ParamsError, match=r"segments\.fsp"):
        load_params(_write(tmp_path, raw))


def test_unknown_top_level_section(tmp_path: Path, raw: dict) -> None:
    raw["clusterr"] = {"k": 3}
    with pytest.raises(ParamsError, match="clusterr"):
        load_params(_write(tmp_path, raw))


@pytest.mark.parametrize(
    ("section", "key", "value", "pattern"),
    [
        ("segments", "fps", -5, r"segments\.fps"),
        ("segments", "vowels", ["AA", "OW"], r"segments\.vowels"),
        ("landmarks", "min_confidence", 1.5, r"landmarks\.min_confidence"),
        ("base", "emotions", ["anger", "joy"], r"base\.emotions"),
        ("base", "max_skip_share", 2, r"base\.max_skip_share"),
    ],
)
def test_out_of_range_values_name_the_key(
    tmp_path: Path, raw: dict, section: str, key: str, value: object, pattern: str
) -> None:
    raw[section][key] = value
    with pytest.raises(ParamsError, match=pattern):
        load_params(_write(tmp_path, raw))


def test_split_fractions_must_sum_to_one(tmp_path: Path, raw: dict) -> None:
    raw["prepare"]["split_fractions"]["test"] = 0.5
    with pytest.raises(ParamsError, match="sum to 1"):
        load_params(_write(tmp_path, raw))


def test_labels_must_fit_adapter(tmp_path: Path, raw: dict) -> None:
    raw["corpora"]["demo_improv"]["labels"] = "voice"
    with pytest.raises(ParamsError, match="does not fit adapter"):
        load_params(_write(tmp_path, raw))


def test_unknown_corpus_lookup_lists_known(raw: dict) -> None:
    p = Params.model_validate(raw)
    with pytest.raises(ConfigError, match="demo_crema"):
        p.corpus("crema")


def test_params_are_frozen(raw: dict) -> None:
    p = Params.model_validate(raw)
    with pytest.raises(ValueError, match="frozen"):
        p.segments.fps = 10  # type: ignore[misc]


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("base: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
