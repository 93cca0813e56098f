"""``agcc tune`` on two tiny fake corpora: workers sharing a study, resume, failed trials, PG."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from agcc.io.cluster_model import AGModel, load_model, save_model
from agcc.params import load_params
from tests.integration.test_train_evaluate import (
    CORPORA,
    fake_clusters,
    fake_corpus,
    write_params,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def tune_root(tracked: Path) -> Path:
    """Fake corpora, the stage's k = 3 model and cached sweep models k = 2, 3, 4."""
    rows = fake_corpus(tracked, "corp_a", 1, 0.0) + fake_corpus(tracked, "corp_b", 2, 0.5)
    fake_clusters(tracked, rows)
    base = load_model(tracked / "cluster" / "model.npz")
    for k in (2, 3, 4):
        cents = base.centroids[[i % 3 for i in range(k)]] + 0.01 * k
        dist = base.distance[[i % 3 for i in range(k)]][:, [i % 3 for i in range(k)]] + 0.1
        model = AGModel(
            cents,
            dist * (1 - (k == 3)) + base.distance * (k == 3) if k == 3 else dist,
            base.gamma,
            "torch",
            1.0,
            1,
        )
        save_model(tracked / "cluster" / "models" / f"k{k:02d}.npz", model)
    return tracked


def tune_params(root: Path, storage: str | None = None, **tune: object) -> Path:
    """params.yaml with a tiny train section and a 4-trial study over k in {2, 3, 4}."""
    path = write_params(root, max_epochs=2)
    raw = yaml.safe_load(path.read_text())
    raw["cluster"] |= {"k_grid": [2, 3, 4], "k": 3}
    raw["tune"] = {
        "storage": storage or f"sqlite:///{root}/tune/optuna.db",
        "n_trials": 4,
        "k": [2, 3, 4],
        "direction": list(CORPORA),
        "pruner_startup_trials": 2,
        "pruner_warmup_epochs": 1,
    } | tune
    path.write_text(yaml.safe_dump(raw))
    return path


def _args(root: Path, params: Path, *extra: str) -> list[str]:
    """``agcc tune`` arguments on the fake pipeline."""
    paths = {
        "--features-root": "features",
        "--segments-root": "segments",
        "--prepared-root": "prepared",
        "--clusters": "cluster",
        "--out": "tune",
    }
    return [
        "--params",
        str(params),
        "tune",
        *[x for opt, sub in paths.items() for x in (opt, str(root / sub))],
        *extra,
    ]


def _study(params: Path) -> optuna.Study:
    """The study named in the params file."""
    tp = load_params(params).tune
    return optuna.load_study(study_name=tp.study, storage=tp.storage)


def _workers(root: Path, params: Path, n: int) -> None:
    """Run ``n`` worker processes on the study at once; each must exit 0.

    The MLflow database is created first: two processes creating its tables at once race in
    MLflow's migrations (in real use the tracking database already exists).
    """
    from agcc import tracking

    tracking._mlflow()
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "agcc.cli", *_args(root, params, "--worker")],
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(n)
    ]
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * n, outs[-1][-3000:]


def _check_exactly(study: optuna.Study, n: int) -> None:
    """N finished trials numbered 0..N-1 (none lost, none duplicated), none left running."""
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(n))
    assert all(t.state.is_finished() for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == n


def test_two_worker_processes_share_one_sqlite_study(tune_root: Path) -> None:
    from agcc.cli import main

    params = tune_params(tune_root)
    _workers(tune_root, params, 2)
    _check_exactly(_study(params), 4)
    # the main run finds the study complete, runs nothing and writes the outputs
    assert main(_args(tune_root, params)) == 0
    _check_exactly(_study(params), 4)
    best = yaml.safe_load((tune_root / "tune" / "best_params.yaml").read_text())
    assert set(best) == {"train.ag_cc.gamma", "train.ag_cc.alpha", "train.ag_cc.beta", "cluster.k"}
    text = (tune_root / "tune" / "best_params.txt").read_text()
    assert "target DEV split (disjoint from test)" in text and "-S train.ag_cc.gamma=" in text
    assert (tune_root / "tune" / "tuned_method.txt").read_text() == "ag_cc\n"
    assert (tune_root / "tune" / "optimization_history.png").stat().st_size > 1000


@pytest.mark.parametrize("method", ["pa_cc", "hard_ag", "la_cc"])
def test_every_anchored_method_tunes_its_own_section(tune_root: Path, method: str) -> None:
    from agcc.cli import main
    from agcc.params import searchable_fields

    params = tune_params(tune_root, n_trials=2)
    assert main(_args(tune_root, params, "--method", method)) == 0
    study = optuna.load_study(study_name=f"agcc-{method}", storage=load_params(params).tune.storage)
    _check_exactly(study, 2)
    assert all(set(t.params) == set(searchable_fields(method)) for t in study.get_trials())
    best = yaml.safe_load((tune_root / "tune" / "best_params.yaml").read_text())
    assert set(best) == {f"train.{method}.{n}" for n in searchable_fields(method)}
    assert (tune_root / "tune" / "tuned_method.txt").read_text() == f"{method}\n"
    assert f"-S train.{method}." in (tune_root / "tune" / "best_params.txt").read_text()


def test_resume_adds_trials_and_each_trial_is_a_nested_mlflow_run(tune_root: Path) -> None:
    from agcc.cli import main

    params = tune_params(tune_root)
    assert main(_args(tune_root, params, "--n-trials", "2")) == 0
    assert main(_args(tune_root, params, "--n-trials", "4")) == 0
    _check_exactly(_study(params), 4)
    runs = mlflow.search_runs(experiment_names=["agcc"], output_format="list")
    parents = {r.info.run_id for r in runs if r.info.run_name == "tune"}
    trials = [r for r in runs if r.info.run_name.startswith("trial ")]
    assert len(parents) == 2 and len(trials) == 4
    assert all(r.data.tags["mlflow.parentRunId"] in parents for r in trials)
    done = [r for r in trials if r.data.tags.get("state") == "COMPLETE"]
    assert done and all("dev_uar_mean" in r.data.metrics for r in done)
    history = mlflow.tracking.MlflowClient().get_metric_history(done[0].info.run_id, "dev_uar")
    assert [m.step for m in history] == [1, 2]
    assert "DEV split" in trials[0].data.tags["objective"]


def test_a_failing_trial_is_recorded_failed_and_the_study_goes_on(
    tune_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agcc.cli import main
    from agcc.stages import tune

    real = tune.train_trial

    def flaky(ctx: tune.TuneContext, values: dict, trial: optuna.Trial, child: object) -> float:
        if trial.number == 1:
            raise RuntimeError("simulated crash")
        return real(ctx, values, trial, child)

    monkeypatch.setattr(tune, "train_trial", flaky)
    params = tune_params(tune_root, n_trials=3)
    assert main(_args(tune_root, params)) == 0
    states = [t.state.name for t in _study(params).get_trials()]
    assert states[1] == "FAIL" and len(states) == 3 and "COMPLETE" in states
    runs = mlflow.search_runs(
        experiment_names=["agcc"],
        output_format="list",
        filter_string="attributes.run_name = 'trial 1'",
    )
    assert [r.info.status for r in runs] == ["FAILED"]


def _free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    """Folder with initdb and pg_ctl (PATH or Debian's /usr/lib/postgresql/<v>/bin)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _as_pg_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser") is None:
        pytest.skip("running as root and runuser is missing: cannot start PostgreSQL")
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture
def postgres() -> str:
    """A throw-away PostgreSQL server on a free port; yields its URL, stops it afterwards."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl; apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2 (pip psycopg2-binary) is not installed")
    # not under pytest's tmp folder: that is private to the test user, and as root the server
    # runs as `postgres`, which must reach its data folder
    data = Path(tempfile.mkdtemp(prefix="agcc-pg-")) / "data"
    if os.geteuid() == 0:
        shutil.chown(data.parent, "postgres")
    port = _free_port()

    def run(*c: str) -> subprocess.CompletedProcess:
        cmd = _as_pg_user([str(pg / c[0]), *c[1:]])
        return subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    run("initdb", "-D", str(data), "-U", "agcc", "--auth=trust")
    run(
        "pg_ctl",
        "-D",
        str(data),
        "-w",
        "-l",
        str(data.parent / "log"),
        "-o",
        f"-p {port} -k {data.parent} -c listen_addresses=127.0.0.1",
        "start",
    )
    try:
        yield f"postgresql+psycopg2://agcc@127.0.0.1:{port}/postgres"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(data.parent, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(tune_root: Path, postgres: str) -> None:
    params = tune_params(tune_root, storage=postgres)
    _workers(tune_root, params, 2)
    _check_exactly(_study(params), 4)
