"""The MLflow store for a team: a safe first start, the commit tag, queued DVC experiments."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agcc import tracking

REPO = Path(__file__).resolve().parents[2]

#: One stage run in a fresh process, opening the store at the time given as argv[1].
_START_TOGETHER = """
import sys, time
import mlflow
from agcc import tracking
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
with tracking.stage_run("s", {"p": 1}):
    pass
"""


@pytest.mark.slow
def test_three_processes_start_together_on_a_fresh_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default: mlruns/mlflow.db
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    # mlflow takes seconds to import: all three open the store at the same wall-clock time
    at = str(time.time() + 15)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _START_TOGETHER, at],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(o[-2000:] for o in outs)
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    monkeypatch.chdir(tmp_path)
    mlflow = tracking._mlflow()
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3


def _repo(root: Path) -> None:
    """A git repository with a source file, params and a tracked output, all committed."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("x = 1\n")
    (root / "params.yaml").write_text("a: 1\n")
    (root / "data").mkdir()
    (root / "data" / "metrics.json").write_text("{}\n")
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "c"], cwd=root, check=True)


def test_a_removed_output_leaves_the_commit_clean_params_make_it_dirty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "metrics.json").unlink()  # what DVC does before the stage runs
    (tmp_path / "untracked.txt").write_text("new\n")
    clean = tracking.git_commit()
    assert len(clean) == 40 and not clean.endswith("-dirty")
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert tracking.git_commit() == clean + "-dirty"


def test_the_commit_tag_is_the_same_from_a_subfolder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(tmp_path)
    monkeypatch.chdir(tmp_path / "data")  # a stage with wdir: the source paths are the repo's
    clean = tracking.git_commit()
    (tmp_path / "src" / "a.py").write_text("x = 2\n")
    assert tracking.git_commit() == clean + "-dirty"


def test_params_changed_behind_the_index_stamps_make_the_commit_dirty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    clean = tracking.git_commit()
    # a queued DVC experiment's copy: its index says params.yaml is unchanged, its content is not
    (tmp_path / "params.yaml").write_text("a: 3\n")
    subprocess.run(["git", "update-index", "--assume-unchanged", "params.yaml"], check=True)
    git_status = ["git", "status", "--porcelain", "--untracked-files=no"]
    assert subprocess.run(git_status, capture_output=True, text=True).stdout == ""
    assert tracking.git_commit() == clean + "-dirty"
    subprocess.run(["git", "rm", "-q", "--cached", "src/a.py"], check=True)  # staged removal
    (tmp_path / "params.yaml").write_text("a: 1\n")
    assert tracking.git_commit() == clean + "-dirty"


@pytest.mark.parametrize(
    ("cwd", "root"),
    [
        ("/p/repo", "/p/repo"),
        ("/p/repo/.dvc/tmp/exps/tmpab12cd", "/p/repo"),
        ("/p/repo/.dvc/tmp/exps/tmpab12cd/sub", "/p/repo"),
        ("/p/repo/.dvc/tmp/other", "/p/repo/.dvc/tmp/other"),
    ],
)
def test_project_root_leaves_a_queued_experiment_workspace(cwd: str, root: str) -> None:
    assert tracking.project_root(Path(cwd)) == Path(root)


def test_queued_experiments_track_into_the_main_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    main = (tmp_path / "repo").resolve()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{main}/mlruns/mlflow.db"
    assert tracking.artifact_root() == main / "mlruns" / "artifacts"
    # a relative SQLite URI passed through by `dvc queue start` means the main repository's
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere/t.db")
    assert tracking.tracking_uri() == f"sqlite:///{main}/elsewhere/t.db"
    for uri in ("http://tracking:5000", f"sqlite:///{tmp_path}/abs.db"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        assert tracking.tracking_uri() == uri
    monkeypatch.chdir(tmp_path)  # outside a queued workspace: unchanged
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.tracking_uri() == tracking.DEFAULT_URI
    assert tracking.artifact_root() == Path(tracking.ARTIFACT_ROOT)


def test_a_queued_experiment_run_lands_in_the_main_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    work.mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(work)
    with tracking.stage_run("s", {}) as run:
        run_id = run.mlflow.active_run().info.run_id
    assert not (work / "mlruns").exists()
    assert (tmp_path / "repo" / "mlruns" / "mlflow.db").is_file()
    monkeypatch.chdir(tmp_path / "repo")
    mlflow = tracking._mlflow()
    assert mlflow.get_run(run_id).info.status == "FINISHED"
