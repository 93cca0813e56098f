"""A tune worker killed with SIGKILL mid-trial: its trial is failed by heartbeat and retried.

The restarted study reaches exactly ``tune.n_trials`` complete trials; the killed trial does not
count, its retry runs the same values, and the killed process's MLflow runs end KILLED.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from agcc import tracking
from tests.faults.conftest import REPO

#: A worker whose trials take no time ("run") or hang after reporting their number ("hang").
WORKER = """
import sys, time, types
from agcc import tracking
from agcc.params import TuneParams
from agcc.stages import tune

url, mode = sys.argv[1], sys.argv[2]
tp = TuneParams(storage=url, n_trials=3, heartbeat_s=1, grace_s=2)

def train_trial(ctx, values, trial, child):
    if mode == "hang":
        print("trial", trial.number, flush=True)
        time.sleep(120)
    return 0.5 + 0.01 * trial.number

tune.train_trial = train_trial
storage = tune.open_storage(tp.storage, tp)
study = tune.open_study(tp, storage, {"x": [0, 1]})
ctx = types.SimpleNamespace(n_total=tp.n_trials, storage=storage)
with tracking.stage_run("tune", {"mode": mode}) as st:
    print("ran", tune.optimize(study, ctx, tp, st), flush=True)
"""


def _worker(url: str, mode: str) -> subprocess.Popen:
    """Start a worker subprocess on the study at ``url``."""
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, mode], stdout=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_killed_worker_trial_is_retried_and_study_reaches_n_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_uri: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    url = f"sqlite:///{tmp_path}/optuna.db"
    hung = _worker(url, "hang")
    assert hung.stdout is not None and hung.stdout.readline().strip() == "trial 0"
    hung.kill()
    assert hung.wait(timeout=60) == -signal.SIGKILL
    study = optuna.load_study(study_name="agcc-ag_cc", storage=url)
    assert [t.state.name for t in study.trials] == ["RUNNING"]
    time.sleep(3.5)  # past grace_s: the trial's heartbeat has stopped

    restart = _worker(url, "run")
    out, _ = restart.communicate(timeout=300)
    assert restart.returncode == 0 and out.strip().endswith("ran 3"), out

    trials = optuna.load_study(study_name="agcc-ag_cc", storage=url).trials
    states = [t.state.name for t in trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    retry = trials[1]
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 0
    assert retry.params == trials[0].params  # the killed trial's values, run again
    runs = tracking._mlflow().search_runs(
        experiment_names=[tracking.EXPERIMENT],
        filter_string=f"tags.`{tracking.PID_TAG}` = '{hung.pid}'",
        output_format="list",
    )
    assert sorted(r.info.run_name for r in runs) == ["trial 0", "tune"]
    assert {r.info.status for r in runs} == {"KILLED"}
