"""The main ``agcc tune`` run waits for the other workers' last trials before its outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_tune import _args, _study, postgres, tune_params, tune_root

__all__ = ["postgres", "tune_root"]  # fixtures used here

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

#: ``agcc`` whose first trial (mode "last") starts training only once every other trial of the
#: study has finished, so that it is the one still running when the other process runs out.
AGCC = """
import sys, time
from agcc.cli import main
from agcc.stages import tune

mode, argv = sys.argv[1], sys.argv[2:]
real = tune.train_trial
held = []

def train_trial(ctx, values, trial, child):
    if mode == "last" and not held:
        held.append(trial.number)
        open("holding", "w").write(str(trial.number))
        deadline = time.time() + 120
        while time.time() < deadline:
            others = [t for t in trial.study.get_trials() if t.number != trial.number]
            if len(others) == ctx.n_total - 1 and all(t.state.is_finished() for t in others):
                break
            time.sleep(0.5)
        time.sleep(3)  # the other process has nothing left to start now
    return real(ctx, values, trial, child)

tune.train_trial = train_trial
sys.exit(main(argv))
"""


def _start(root: Path, params: Path, mode: str, *extra: str) -> subprocess.Popen:
    """``agcc tune`` on the fake pipeline in a subprocess (``mode`` "last": see AGCC)."""
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", AGCC, mode, *_args(root, params, *extra)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_holding(root: Path, worker: subprocess.Popen) -> int:
    """Until the worker holds its trial; the trial's number."""
    deadline = time.time() + 120
    while not (root / "holding").is_file():
        assert worker.poll() is None, worker.communicate()[0][-3000:]
        assert time.time() < deadline, "the worker started no trial"
        time.sleep(0.2)
    return int((root / "holding").read_text())


def _main_writes_after_the_worker(root: Path, params: Path) -> dict:
    """A worker holding the study's last trial, and the main run: best.json of the main run."""
    from agcc import tracking

    tracking._mlflow()  # the store exists before the two processes start
    worker = _start(root, params, "last", "--worker")
    assert _wait_holding(root, worker) == 0
    main = _start(root, params, "plain")
    out_main = main.communicate(timeout=400)[0]
    out_worker = worker.communicate(timeout=400)[0]
    assert (main.returncode, worker.returncode) == (0, 0), out_main[-3000:] + out_worker[-3000:]
    assert "waiting for trials [0] running in other workers" in out_main, out_main[-3000:]
    return json.loads((root / "tune" / "best.json").read_text())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_best_json_covers_the_trial_another_worker_finishes_last(
    tune_root: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    # PostgreSQL: a throw-away local server (the fixture skips, saying why, where none starts)
    storage = request.getfixturevalue("postgres") if backend == "postgresql" else None
    params = tune_params(
        tune_root, storage, n_trials=3, pruner_startup_trials=10, heartbeat_s=1, grace_s=5
    )
    best = _main_writes_after_the_worker(tune_root, params)
    study = _study(params)
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE"] * 3
    assert (best["n_trials"], best["n_complete"], best["n_running"]) == (3, 3, 0)
    assert best["best_trial"] == study.best_trial.number
    assert best["best_dev_uar"] == pytest.approx(study.best_value, abs=1e-6)
    trials = (tune_root / "tune" / "trials.csv").read_text().splitlines()
    assert len(trials) == 4 and not any("RUNNING" in row for row in trials)


def test_max_epochs_option_sets_the_trial_budget(
    tune_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agcc import tracking
    from agcc.cli import main

    params = tune_params(tune_root, n_trials=1)  # train.max_epochs 2
    assert main(_args(tune_root, params, "--max-epochs", "1")) == 0
    study = _study(params)
    assert study.user_attrs["agcc_search_space"]["max_epochs"] == 1
    mlflow = tracking._mlflow()
    (trial,) = mlflow.search_runs(
        experiment_names=["agcc"],
        filter_string="attributes.run_name = 'trial 0'",
        output_format="list",
    )
    steps = mlflow.MlflowClient().get_metric_history(trial.info.run_id, "dev_uar")
    assert [m.step for m in steps] == [1]
    # another budget is another search space: refused for the same study
    assert main(_args(tune_root, params, "--max-epochs", "2", "--n-trials", "2")) == 2
    assert "another search space (differs in ['max_epochs'])" in caplog.text
    assert len(_study(params).get_trials()) == 1


def test_main_run_retries_the_last_trial_of_a_killed_worker(tune_root: Path) -> None:
    from agcc import tracking

    params = tune_params(tune_root, n_trials=3, pruner_startup_trials=10, heartbeat_s=1, grace_s=4)
    tracking._mlflow()
    worker = _start(tune_root, params, "last", "--worker")
    assert _wait_holding(tune_root, worker) == 0
    main = _start(tune_root, params, "plain")
    deadline = time.time() + 240
    while [t.state.is_finished() for t in _study(params).get_trials()] != [False, True, True]:
        assert time.time() < deadline and main.poll() is None, "the main run did not run 1, 2"
        time.sleep(0.2)
    worker.kill()  # while its trial 0 is the last one running: the main run is waiting for it
    out = worker.communicate(timeout=60)[0]
    out += main.communicate(timeout=400)[0]
    assert main.returncode == 0, out[-3000:]
    trials = _study(params).get_trials()
    states = [t.state.name for t in trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"], out[-6000:]
    assert trials[3].params == trials[0].params  # the retry, run by the main run
    best = json.loads((tune_root / "tune" / "best.json").read_text())
    assert (best["n_trials"], best["n_complete"], best["n_fail"]) == (3, 3, 1)


def test_a_running_trial_that_never_beat_is_not_waited_for_after_the_grace(tmp_path: Path) -> None:
    import optuna

    from agcc.params import TuneParams
    from agcc.stages import tune

    tp = TuneParams(storage=f"sqlite:///{tmp_path}/o.db", heartbeat_s=1, grace_s=2)
    storage = tune.open_storage(tp.storage, tp)
    study = tune.open_study(tp, storage, {"x": [0, 1]})
    with tune.quiet_heartbeat_warnings():
        silent, beating = study.ask(), study.ask()
    storage.record_heartbeat(beating._trial_id)
    running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert tune.never_beat(storage, running, tp.grace_s) == set()  # both just started
    time.sleep(2.5)
    assert tune.never_beat(storage, running, tp.grace_s) == {silent._trial_id}
