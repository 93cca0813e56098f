"""Fast checks of ``agcc tune``: params, storage errors, search-space guard, best-params file."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from agcc.errors import ConfigError
from agcc.params import (
    METHOD_SECTIONS,
    TUNABLE_METHODS,
    Params,
    ParamsError,
    TrainParams,
    TuneParams,
    load_params,
    searchable_fields,
)
from agcc.stages import tune

REPO = Path(__file__).resolve().parents[2]
SPACE = tune.search_space(TuneParams(), ("demo_crema", "demo_improv"), 12)


def _params_with(tmp_path: Path, **section: object) -> Path:
    """The repository's params.yaml with ``tune`` keys replaced."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tune"] |= section
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_tune_k_must_have_a_cached_model(tmp_path: Path) -> None:
    p = load_params(_params_with(tmp_path, k=[10, 31]))  # other stages still load these params
    with pytest.raises(ParamsError, match=r"tune.k \[31\] have no cached AG model"):
        p.check_tune_k()
    load_params(_params_with(tmp_path, k=[10, 12])).check_tune_k()


def test_tune_direction_must_be_a_train_direction(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not one of train.directions"):
        load_params(_params_with(tmp_path, direction=["demo_crema", "demo_crema"]))
    p = load_params(_params_with(tmp_path, direction=None))
    assert p.tune_direction() == tuple(p.train.directions[0])


def _ranges(**method: dict) -> dict:
    """The repository's tune.ranges with some methods' ranges replaced."""
    return yaml.safe_load((REPO / "params.yaml").read_text())["tune"]["ranges"] | method


def test_inverted_range_is_refused(tmp_path: Path) -> None:
    bad = {"gamma": [2.0, 1.0], "alpha": [0.1, 0.2], "beta": [0.0, 1.0]}
    with pytest.raises(ParamsError, match=r"tune.ranges.ag_cc.gamma must be .*low <= high"):
        load_params(_params_with(tmp_path, ranges=_ranges(ag_cc=bad)))


@pytest.mark.parametrize(
    ("la_cc", "message"),
    [
        ({"gamma": [1.0, 2.0], "top_m": [1, 1], "margin": [0, 1]}, "has no numeric field 'margin'"),
        ({"gamma": [1.0, 2.0], "top_m": [1, 2.5]}, r"top_m is an int, got \[1.0, 2.5\]"),
        ({"gamma": [1.0, 2.0], "top_m": [0, 1]}, r"top_m: 0.0 is invalid"),
    ],
)
def test_ranges_must_fit_the_methods_fields(tmp_path: Path, la_cc: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        load_params(_params_with(tmp_path, ranges=_ranges(la_cc=la_cc)))


def test_the_tuned_method_needs_a_range_per_field(tmp_path: Path) -> None:
    ranges = _ranges(pa_cc={"gamma": [0.1, 3.0]})
    load_params(_params_with(tmp_path, ranges=ranges))  # another method tuned: fine
    with pytest.raises(ParamsError, match=r"fields \['alpha'\]: add tune.ranges.pa_cc.alpha"):
        load_params(_params_with(tmp_path, ranges=ranges, method="pa_cc"))


@pytest.mark.parametrize("method", TUNABLE_METHODS)
def test_each_method_searches_its_own_sections_fields(method: str) -> None:
    tp = load_params(REPO / "params.yaml").tune.model_copy(update={"method": method})
    fields = searchable_fields(method)
    assert fields and set(tp.space()) == set(fields) <= set(METHOD_SECTIONS[method].model_fields)
    space = tune.search_space(tp, ("demo_crema", "demo_improv"), 12)
    assert space["method"] == method and ("k" in space) == (method == "ag_cc")
    assert tp.study == f"agcc-{method}"
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    values = tune.suggest(study.ask(), tp)
    assert set(values) == set(fields) | ({"k"} if method == "ag_cc" else set())
    for name, (low, high) in tp.space().items():
        assert low <= values[name] <= high and type(values[name]) is fields[name]
    section = tune.trial_section(TrainParams(), values, method)
    assert type(section) is METHOD_SECTIONS[method]
    assert all(getattr(section, n) == values[n] for n in fields)
    applied = yaml.safe_load(tune.best_params_yaml(values, 0.5, tp.study, 0, method))
    assert set(applied) == {tune.param_key(method, n) for n in values}
    assert all(k.startswith(f"train.{method}.") or k == "cluster.k" for k in applied)
    cmd = tune.exp_run_command(values, method)
    assert cmd.count(f"-S train.{method}.") == len(fields)


def test_oracle_is_refused_before_anything_runs(tmp_path: Path) -> None:
    p = load_params(REPO / "params.yaml")
    oracle = p.train.model_copy(update={"oracle": True})
    tp = p.tune.model_copy(update={"storage": f"sqlite:///{tmp_path}/never.db"})
    with pytest.raises(ConfigError, match=r"train.oracle is true: tuning refuses it"):
        tune.run(None, tp, oracle, p.base, ("demo_crema", "demo_improv"), 30.0, tmp_path / "o")
    assert not (tmp_path / "never.db").exists()


def test_cli_method_option_overrides_tune_method(monkeypatch: pytest.MonkeyPatch) -> None:
    from agcc import cli

    seen = {}
    monkeypatch.setattr(tune, "run", lambda _inputs, tp, *a, **kw: seen.setdefault("tp", tp))
    grid = [f"--{o}={o}" for o in ("features-root", "segments-root", "prepared-root", "clusters")]
    argv = ["--params", str(REPO / "params.yaml"), "tune", *grid, "--out", "o"]
    assert cli.main([*argv, "--method", "la_cc"]) == 0
    assert seen["tp"].method == "la_cc" and seen["tp"].study == "agcc-la_cc"
    assert set(seen["tp"].space()) == set(searchable_fields("la_cc"))
    with pytest.raises(SystemExit):
        cli._parser().parse_args([*argv, "--method", "source_only"])


def test_unreachable_storage_names_the_url_and_hides_the_password() -> None:
    url = "postgresql+psycopg2://agcc:secret@127.0.0.1:1/nowhere"
    pytest.importorskip("psycopg2")
    with pytest.raises(tune.TuneError, match=r"127.0.0.1:1/nowhere.*cannot be reached") as e:
        tune.open_storage(url)
    assert "secret" not in str(e.value)


def test_malformed_storage_url_is_a_clear_error() -> None:
    with pytest.raises(tune.TuneError, match=r"'nonsense://x' cannot be reached"):
        tune.open_storage("nonsense://x")


def test_existing_study_with_another_space_is_refused(tmp_path: Path) -> None:
    storage = tune.open_storage(f"sqlite:///{tmp_path}/o.db")
    tune.open_study(TuneParams(), storage, SPACE)
    tune.open_study(TuneParams(), storage, SPACE)  # same space: resumes
    other = SPACE | {"k": [8, 10]}
    with pytest.raises(tune.TuneError, match=r"another search space \(differs in \['k'\]\)"):
        tune.open_study(TuneParams(), storage, other)


def test_best_params_file_holds_schema_keys_that_validate(tmp_path: Path) -> None:
    best = {"gamma": 0.812345678, "alpha": 0.25, "beta": 0.5, "k": 12}
    text = tune.best_params_yaml(best, 0.61234, "s", 3)
    assert text.startswith("# objective = UAR on the target DEV split (disjoint from test)")
    applied = yaml.safe_load(text)
    assert applied == {
        "train.ag_cc.gamma": 0.812346,
        "train.ag_cc.alpha": 0.25,
        "train.ag_cc.beta": 0.5,
        "cluster.k": 12,
    }
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in applied.items():  # what `dvc exp run -S key=value` does to params.yaml
        *path, name = key.split(".")
        node = raw
        for part in path:
            node = node[part]
        assert name in node
        node[name] = value
    p = Params.model_validate(raw)
    assert (p.train.ag_cc.gamma, p.train.ag_cc.beta, p.cluster.k) == (0.812346, 0.5, 12)
    assert p.train.pa_cc.alpha == 0.3 and p.train.hard_ag.beta == 0.2  # other methods untouched
    cmd = tune.exp_run_command(best)
    assert cmd == (
        "dvc exp run -S train.ag_cc.gamma=0.812346 -S train.ag_cc.alpha=0.25 "
        "-S train.ag_cc.beta=0.5 -S cluster.k=12"
    )


def test_a_trial_changes_only_ag_ccs_own_section() -> None:
    tp = TrainParams()
    section = tune.trial_section(tp, {"gamma": 2.0, "alpha": 0.1, "beta": 0.7, "k": 8})
    assert (section.gamma, section.alpha, section.beta) == (2.0, 0.1, 0.7)
    assert tp.ag_cc.gamma == 1.0 and type(section) is type(tp.ag_cc)


def test_interrupted_trials_do_not_count_failed_ones_do(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/o.db")
    for interrupted in (False, True):
        t = study.ask()
        if interrupted:
            t.set_user_attr("interrupted", True)
        study.tell(t, state=optuna.trial.TrialState.FAIL)
    study.tell(study.ask(), 0.5)
    study.ask()  # running: reserves its slot
    assert tune.counted(study) == 3


def test_sqlite_lock_is_a_file_beside_the_database(tmp_path: Path) -> None:
    storage = tune.open_storage(f"sqlite:///{tmp_path}/o.db")
    with tune.study_lock(storage, "s"):
        assert (tmp_path / "o.db.s.lock").is_file()
