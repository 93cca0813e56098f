"""A team: checkout A runs the tiny pipeline against an MLflow tracking server and pushes its
outputs to a DVC remote; checkout B (a git clone of A) pulls them, has nothing to run, and sees
every run of A on the server, artifacts included (docs/scaling.md)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_dvc_repro import _sh, clone

__all__ = ["clone"]  # fixture used here

pytestmark = pytest.mark.slow


def _free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``mlflow server`` proxying artifacts, on a free port; its URL and artifacts folder."""
    port = _free_port()
    artifacts = tmp_path / "server" / "artifacts"
    artifacts.mkdir(parents=True)
    log = (tmp_path / "server" / "log").open("w")
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server' / 'server.db'}",
        "--artifacts-destination",
        str(artifacts),
        "--serve-artifacts",
    ]
    # its own process group: the server starts uvicorn and job runners, stopped with it
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as res:
                    if res.status == 200:
                        break
            except OSError:
                pass
            text = (tmp_path / "server" / "log").read_text()[-3000:]
            assert proc.poll() is None, f"mlflow server exited:\n{text}"
            assert time.time() < deadline, f"mlflow server not healthy after 120 s:\n{text}"
            time.sleep(0.5)
        yield url, artifacts
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # whatever of the group is still there
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


def _digests(root: Path, *folders: str) -> dict[str, str]:
    """sha256 of every file under the folders of ``root``, by path relative to ``root``."""
    out = {}
    for folder in folders:
        for f in sorted((root / folder).rglob("*")):
            if f.is_file():
                out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _size(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def test_second_checkout_pulls_outputs_and_sees_every_run(
    clone: tuple[Path, dict[str, str]], server: tuple[str, Path], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    a, env = clone
    url, artifacts = server
    env = env | {"MLFLOW_TRACKING_URI": url}
    env_a = env | {"PYTHONPATH": str(a / "src")}  # each checkout runs its own code
    dvc = [sys.executable, "-m", "dvc"]
    remote = tmp_path / "dvc-remote"

    # A: run everything against the server, share the remote through git, push the outputs
    t0 = time.perf_counter()
    out_a = _sh([*dvc, "repro"], a, env_a)
    repro_s = time.perf_counter() - t0
    stages_run = sorted(
        line.split("'")[1] for line in out_a.splitlines() if line.startswith("Running stage '")
    )
    assert "evaluate" in stages_run, out_a[-3000:]
    _sh([*dvc, "remote", "add", "-d", "storage", str(remote)], a, env_a)
    _sh(["git", "add", "-A"], a, env_a)  # dvc.lock, .dvc/config, the uncached outputs
    _sh(["git", "commit", "-qm", "outputs and remote"], a, env_a)
    t0 = time.perf_counter()
    _sh([*dvc, "push"], a, env_a)
    push_s = time.perf_counter() - t0
    assert not (a / "mlruns" / "mlflow.db").exists()  # the runs went to the server only

    client = MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name("agcc")
    assert experiment.artifact_location.startswith("mlflow-artifacts:/")
    runs_a = client.search_runs([experiment.experiment_id], max_results=5000)
    ids_a = {r.info.run_id for r in runs_a}
    children = [r for r in runs_a if "mlflow.parentRunId" in r.data.tags]
    parents = [r for r in runs_a if "mlflow.parentRunId" not in r.data.tags]
    assert children, "no nested runs (train fits)"
    assert {r.data.tags["mlflow.parentRunId"] for r in children} <= ids_a
    assert all(r.info.status == "FINISHED" for r in runs_a)
    # one top-level run per stage A ran (stage@key is run "stage:key"), but for the two that
    # log none: params (a check) and demo (generated inputs)
    tracked = [s for s in stages_run if s not in ("params", "demo")]
    assert sorted(r.info.run_name.replace(":", "@") for r in parents) == tracked

    # B: a git clone of A, the same server; the remote comes with .dvc/config
    b = tmp_path / "b"
    _sh(["git", "clone", "-q", str(a), str(b)], tmp_path, env)
    env_b = env | {"PYTHONPATH": str(b / "src")}
    t0 = time.perf_counter()
    _sh([*dvc, "pull"], b, env_b)
    pull_s = time.perf_counter() - t0
    status = _sh([*dvc, "status", "dvc.yaml"], b, env_b)  # tune/dvc.yaml: never run
    assert "up to date" in status.lower(), status
    again = _sh([*dvc, "repro"], b, env_b)
    assert "Running stage" not in again, again[-3000:]
    assert _sh(["git", "status", "--porcelain"], b, env_b) == ""  # dvc.lock, outputs as pushed
    folders = ("data", "metrics")
    digests_a = _digests(a, *folders)
    assert digests_a == _digests(b, *folders)
    assert "data/evaluate/table2.md" in digests_a and "data/evaluate/metrics.json" in digests_a

    # B sees every run of A through the server (a client started in B's checkout)
    script = (
        "from mlflow import MlflowClient\n"
        "c = MlflowClient()\n"
        "e = c.get_experiment_by_name('agcc')\n"
        "for r in c.search_runs([e.experiment_id], max_results=5000):\n"
        "    parent = r.data.tags.get('mlflow.parentRunId', '-')\n"
        "    print(r.info.run_id, r.info.artifact_uri, parent)\n"
    )
    seen = [line.split() for line in _sh([sys.executable, "-c", script], b, env_b).splitlines()]
    seen = [row for row in seen if len(row) == 3 and len(row[0]) == 32]
    assert {row[0] for row in seen} == ids_a  # B's repro started no run either
    assert sum(row[2] != "-" for row in seen) == len(children)
    assert all(row[1].startswith("mlflow-artifacts:/") for row in seen), seen[:3]

    # an artifact of A's run, downloaded in B through the server, is A's file
    (prepare,) = [r for r in parents if r.info.run_name == "prepare:demo_crema"]
    fetch = (
        "import sys, mlflow\n"
        "print(mlflow.artifacts.download_artifacts(run_id=sys.argv[1], "
        "artifact_path='skips.csv', dst_path=sys.argv[2]))\n"
    )
    dst = tmp_path / "download"
    _sh([sys.executable, "-c", fetch, prepare.info.run_id, str(dst)], b, env_b)
    got = dst / "skips.csv"
    assert got.read_bytes() == (a / "data" / "prepared" / "demo_crema" / "skips.csv").read_bytes()
    assert list(artifacts.rglob("skips.csv"))  # stored by the server, not by the checkouts

    print(
        f"\nteam share: A repro {repro_s:.1f} s ({len(stages_run)} stages); "
        f"push {push_s:.1f} s, remote {_size(remote) / 1e6:.2f} MB "
        f"({sum(1 for f in remote.rglob('*') if f.is_file())} files); pull {pull_s:.1f} s; "
        f"runs: A {len(ids_a)} ({len(parents)} stage, {len(children)} nested), B sees {len(seen)}; "
        f"server artifacts {_size(artifacts) / 1e6:.2f} MB; B data+metrics "
        f"{sum(_size(b / f) for f in folders) / 1e6:.2f} MB"
    )
    shutil.rmtree(dst, ignore_errors=True)
