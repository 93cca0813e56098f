"""A stage process killed mid-run leaves no MLflow run RUNNING.

SIGTERM and Ctrl-C end the run KILLED from inside the process; after SIGKILL the next stage run
(of any stage, on the same host) finds the run's process gone and marks it KILLED.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agcc import tracking
from tests.faults.conftest import REPO, latest_run

#: A stage that reports it has started, then works for a minute.
STAGE = """
import sys, time
from agcc import tracking
with tracking.stage_run("segments", {}, corpus=sys.argv[1], metrics_path="out/metrics.json",
                        skips_path="out/skips.csv"):
    print("started", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_uri: str) -> Path:
    """tmp_path as working directory, MLflow in the store shared by the fault tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    return tmp_path


def _start(corpus: str) -> subprocess.Popen:
    """Run :data:`STAGE` in a subprocess and wait until its MLflow run exists."""
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", STAGE, corpus], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    return proc


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, -signal.SIGINT)])
def test_terminated_stage_ends_its_run_killed(workdir: Path, sig: int, code: int) -> None:
    corpus = f"term{int(sig)}"
    proc = _start(corpus)
    assert latest_run(f"segments:{corpus}").info.status == "RUNNING"
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == code
    run = latest_run(f"segments:{corpus}")
    assert run.info.status == "KILLED"
    assert run.data.tags[tracking.PID_TAG] == str(proc.pid)
    assert not (workdir / "out" / "metrics.json").exists()


@pytest.mark.slow
def test_sigkilled_stage_run_is_marked_killed_by_the_next_run(workdir: Path) -> None:
    proc = _start("sigkill")
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert latest_run("segments:sigkill").info.status == "RUNNING"  # nobody could end it
    with tracking.stage_run("segments", {}, corpus="sigkill"):
        pass
    runs = tracking._mlflow().search_runs(
        experiment_names=[tracking.EXPERIMENT],
        filter_string="attributes.run_name = 'segments:sigkill'",
        output_format="list",
    )
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]


def test_run_of_a_live_process_is_left_running(workdir: Path) -> None:
    tags = tracking.process_tags()
    assert not tracking._gone(tags)  # this process
    parent = {tracking.PID_TAG: str(os.getppid()), tracking.START_TAG: ""}
    assert not tracking._gone(tags | parent)  # alive
    started = tracking._process_start(os.getppid())
    assert not tracking._gone(tags | parent | {tracking.START_TAG: started})  # alive, same start
    if started:  # Linux: /proc tells a reused pid by its start time
        assert tracking._gone(tags | parent | {tracking.START_TAG: started + "0"})
    assert not tracking._gone(tags | {tracking.HOST_TAG: "elsewhere"})  # cannot tell
    assert not tracking._gone({})  # a run of an older version: no pid tag
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert tracking._gone(tags | {tracking.PID_TAG: str(dead.pid)})
