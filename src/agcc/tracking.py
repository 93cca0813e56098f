"""MLflow tracking and DVC metrics for every stage; the only module that imports mlflow.

Nothing happens at import time. The backend defaults to ``sqlite:///mlruns/mlflow.db`` with
artifacts under ``mlruns/artifacts`` (MLflow 3 deprecates the plain file store);
``MLFLOW_TRACKING_URI`` overrides it, so a remote tracking server works the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agcc.skips import SkipReport

log = logging.getLogger(__name__)

EXPERIMENT = "agcc"
DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
ARTIFACT_ROOT = "mlruns/artifacts"


def _mlflow():  # noqa: ANN202 - the module
    """Import mlflow lazily with telemetry off and the project's backend selected."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = None
        if uri == DEFAULT_URI:
            Path(ARTIFACT_ROOT).mkdir(parents=True, exist_ok=True)
            location = Path(ARTIFACT_ROOT).resolve().as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def git_commit() -> str:
    """Current git commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def dvc_lock_hashes(stage: str, lock_path: str | Path = "dvc.lock") -> dict[str, str]:
    """The md5 of each dependency of ``stage`` as recorded in ``dvc.lock`` (empty if absent)."""
    path = Path(lock_path)
    if not path.exists():
        return {}
    lock = yaml.safe_load(path.read_text()) or {}
    entry = lock.get("stages", {}).get(stage, {})
    return {
        f"dvc.dep.{d['path']}": str(d.get("md5") or d.get("hash") or "")
        for d in entry.get("deps", [])
    }


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys (MLflow params are flat)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


@dataclass
class StageRun:
    """Handle a stage uses while it runs: its skip report, its metrics and MLflow logging."""

    stage: str
    skips: SkipReport
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow: Any = None
    tags: dict[str, str] = field(default_factory=dict)

    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None:
        """Attach a file to the stage's MLflow run."""
        self.mlflow.log_artifact(str(path), artifact_path=subdir)

    def log_figure(self, fig: Any, name: str) -> None:
        """Attach a matplotlib figure to the stage's MLflow run."""
        self.mlflow.log_figure(fig, name)

    def log_step(self, metrics: dict[str, float], step: int) -> None:
        """Log per-step metrics (e.g. per epoch) to MLflow."""
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    @contextmanager
    def child(self, name: str, params: dict[str, Any]) -> Iterator[StageRun]:
        """A nested MLflow run (one model fit, one trial) under this stage's run.

        The child shares this stage's skip report; an exception marks only the child FAILED
        before it propagates.
        """
        with self.mlflow.start_run(run_name=name, nested=True):
            self.mlflow.set_tags(self.tags | {"parent_stage": self.stage})
            self.mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params).items()})
            try:
                yield StageRun(self.stage, self.skips, mlflow=self.mlflow, tags=self.tags)
            except BaseException:
                self.mlflow.end_run(status="FAILED")
                raise

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Tag the active (stage or child) run; values are stored as strings."""
        self.mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Log final metrics of the active (stage or child) run to MLflow only."""
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


@contextmanager
def stage_run(
    stage: str,
    params: dict[str, Any],
    *,
    corpus: str | None = None,
    metrics_path: str | Path | None = None,
    skips_path: str | Path | None = None,
    max_skip_share: float = 1.0,
) -> Iterator[StageRun]:
    """Run a stage inside an MLflow run; write its skip report and metrics on success.

    On any exception (including too many skips) the MLflow run ends as FAILED and no metrics
    file is written, so a failed stage never looks finished.
    """
    mlflow = _mlflow()
    dvc_stage = f"{stage}@{corpus}" if corpus else stage
    name = f"{stage}:{corpus}" if corpus else stage
    run = StageRun(stage=dvc_stage, skips=SkipReport(dvc_stage))
    t0 = time.perf_counter()
    with mlflow.start_run(run_name=name) as active:
        run.mlflow = mlflow
        run.tags = {"stage": stage, "corpus": corpus or "", "git_commit": git_commit()}
        run.tags |= dvc_lock_hashes(dvc_stage)
        mlflow.set_tags(run.tags)
        mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params).items()})
        try:
            yield run
            _finish(run, time.perf_counter() - t0, metrics_path, skips_path, max_skip_share)
        except BaseException:
            if skips_path is not None:
                run.skips.write(skips_path)
            mlflow.end_run(status="FAILED")
            log.error("%s failed; MLflow run %s marked FAILED", name, active.info.run_id)
            raise


def corpus_stage_run(
    stage: str, corpus: str, params: dict[str, Any], out_dir: str | Path, max_skip_share: float
) -> contextlib.AbstractContextManager[StageRun]:
    """stage_run for a per-corpus stage writing out_dir/metrics.json and out_dir/skips.csv."""
    out_dir = Path(out_dir)
    return stage_run(
        stage,
        params,
        corpus=corpus,
        metrics_path=out_dir / "metrics.json",
        skips_path=out_dir / "skips.csv",
        max_skip_share=max_skip_share,
    )


def _finish(
    run: StageRun,
    seconds: float,
    metrics_path: str | Path | None,
    skips_path: str | Path | None,
    max_skip_share: float,
) -> None:
    """Write and log the skip report, check the skip share, then write and log metrics."""
    if skips_path is not None:
        run.log_artifact(run.skips.write(skips_path))
    run.metrics |= {
        "n_input": run.skips.n_seen,
        "n_skipped": run.skips.n_skipped,
        "skip_share": round(run.skips.share(), 6),
    } | {f"skipped.{k}": v for k, v in run.skips.counts().items()}
    run.mlflow.log_metrics({k: float(v) for k, v in run.metrics.items()})
    run.mlflow.log_metric("seconds", seconds)
    run.skips.check(max_skip_share)
    if metrics_path is not None:
        path = Path(metrics_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run.metrics, indent=2, sort_keys=True) + "\n")
