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


def test_each_method_has_its_own_section_with_only_its_hyperparameters(raw: dict) -> None:
    tp = Params.model_validate(raw).train
    assert tp.hyper("source_only").model_dump() == {}
    assert tp.hyper("pa_cc").model_dump() == {"gamma": 1.0, "alpha": 0.3}
    assert tp.hyper("hard_ag").model_dump() == {"gamma": 1.0, "alpha": 0.3, "beta": 0.2}
    assert tp.hyper("la_cc").model_dump() == {"gamma": 100.0, "top_m": 1, "warmup_epochs": 2}
    assert tp.hyper("ag_cc").model_dump() == {"gamma": 1.0, "alpha": 0.3, "beta": 0.2}
    assert tp.hyper("upper_bound") is tp.source_only  # the same models as source_only
    assert "upper_bound" not in tp.methods and tp.upper_bound
    assert tp.table_methods()[-1] == "upper_bound"
    assert not {"gamma", "alpha", "beta", "la_top_m"} & set(raw["train"])


def test_unknown_method_and_unlisted_method_are_config_errors(raw: dict) -> None:
    tp = Params.model_validate(raw).train
    with pytest.raises(ConfigError, match="unknown method 'ag_c'.*known methods"):
        tp.hyper("ag_c")
    short = tp.model_copy(update={"methods": ("source_only", "ag_cc")})
    with pytest.raises(ConfigError, match="'la_cc' is not in train.methods"):
        short.check_method("la_cc")


def test_a_listed_method_without_its_section_names_the_section(tmp_path: Path, raw: dict) -> None:
    del raw["train"]["ag_cc"]
    with pytest.raises(ParamsError, match=r"lists \['ag_cc'\].*add train\.ag_cc"):
        load_params(_write(tmp_path, raw))


def test_a_section_key_of_another_method_is_an_error(tmp_path: Path, raw: dict) -> None:
    raw["train"]["pa_cc"]["beta"] = 0.2  # pa_cc has no soft weights
    with pytest.raises(ParamsError, match=r"train\.pa_cc\.beta"):
        load_params(_write(tmp_path, raw))
    del raw["train"]["pa_cc"]["beta"]
    raw["train"]["gamma"] = 1.0  # the old shared key
    with pytest.raises(ParamsError, match=r"train\.gamma"):
        load_params(_write(tmp_path, raw))


def test_upper_bound_is_a_flag_that_needs_source_only(tmp_path: Path, raw: dict) -> None:
    raw["train"]["methods"] = ["ag_cc", "upper_bound"]
    with pytest.raises(ParamsError, match="upper_bound is not a method.*train.upper_bound: true"):
        load_params(_write(tmp_path, raw))
    raw["train"]["methods"] = ["ag_cc"]
    with pytest.raises(ParamsError, match="upper_bound: true needs source_only"):
        load_params(_write(tmp_path, raw))
    raw["train"]["upper_bound"] = False
    assert load_params(_write(tmp_path, raw)).train.table_methods() == ("ag_cc",)
