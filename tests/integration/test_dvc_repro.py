"""`dvc repro` from a clean copy of the repository on a tiny demo, then a no-op repro."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from .conftest import REPO, tiny_params


def _sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a command, failing the test with its output when it fails."""
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    tail = f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{tail}"
    return res.stdout + res.stderr


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The repository's tracked files copied to tmp_path, with tiny params, committed."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    dst = tmp_path / "repo"
    for f in files:
        if (REPO / f).is_file() and not f.startswith(("data/", "metrics/")) and f != "dvc.lock":
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    (dst / "params.yaml").write_text(yaml.safe_dump(tiny_params(Path(".")), sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "GIT_"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    _sh(["git", "init", "-q"], dst, env)
    _sh(["git", "add", "-A"], dst, env)
    _sh(["git", "commit", "-qm", "tiny"], dst, env)
    return dst, env


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_then_is_a_noop(clone: tuple[Path, dict[str, str]]) -> None:
    repo, env = clone
    dvc = [sys.executable, "-m", "dvc"]
    out = _sh([*dvc, "repro"], repo, env)
    assert "segments@demo_improv" in out
    for c in ("demo_crema", "demo_improv"):
        assert (repo / "data" / "segments" / c / "segments.npz").exists()
    assert "up to date" in _sh([*dvc, "status", "dvc.yaml"], repo, env).lower()
    second = _sh([*dvc, "repro"], repo, env)
    assert "didn't change, skipping" in second or "up to date" in second.lower(), second
    mlflow.set_tracking_uri(f"sqlite:///{repo}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["agcc"], output_format="list")
    assert all(r.info.status == "FINISHED" for r in runs)
    per_corpus = [r for r in runs if r.data.tags.get("corpus")]
    dvc_stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    foreach = [name for name, st in dvc_stages.items() if st.get("foreach") == "${corpora}"]
    assert {"prepare", "landmarks", "segments", "features"} <= set(foreach)
    assert sorted(r.info.run_name for r in per_corpus) == sorted(
        f"{s}:{c}" for s in foreach for c in ("demo_crema", "demo_improv")
    )
    for stage in ("cluster", "analyze", "evaluate"):
        assert any(r.info.run_name == stage for r in runs), f"no MLflow run for {stage}"
    methods = tiny_params(Path("."))["train"]["methods"]
    for method in methods:  # one train stage per method, each its own MLflow run
        assert any(r.info.run_name == f"train:{method}" for r in runs), f"no train:{method}"
    assert all(r.data.tags["git_commit"] not in ("", "unknown") for r in runs)
    metrics = json.loads(_sh([*dvc, "metrics", "show", "--json"], repo, env).split("\n", 1)[0])
    shown = metrics[""]["data"]  # path -> {"data": {key: value}}: the headline files only
    assert all(path.endswith("headline.json") for path in shown), sorted(shown)
    keys = {k for f in shown.values() for k in f.get("data", {})}  # tune: never run here
    assert keys <= {
        "skip_share",
        "utterances",
        "segments",
        "k",
        "k_elbow",
        "overlap",
        "uar",
        "ag_cc_gain",
        "dev_uar",
    }, keys

    # an experiment with one changed parameter re-runs only the stages that read it
    _sh(["git", "add", "-A"], repo, env)
    _sh(["git", "commit", "-qm", "lock"], repo, env)
    exp = _sh([*dvc, "exp", "run", "-S", "segments.min_frames=4"], repo, env)
    assert "Running stage 'segments@demo_crema'" in exp
    assert "Running stage 'prepare@demo_crema'" not in exp

    # a method's own hyperparameter re-runs that method's training (and evaluate) only
    _sh(["git", "add", "-A"], repo, env)
    _sh(["git", "commit", "-qm", "exp"], repo, env)
    exp = _sh([*dvc, "exp", "run", "-S", "train.ag_cc.gamma=0.5"], repo, env)
    assert "Running stage 'train@ag_cc'" in exp and "Running stage 'evaluate'" in exp
    others = [m for m in methods if m != "ag_cc"]
    assert not [m for m in others if f"Running stage 'train@{m}'" in exp], exp
