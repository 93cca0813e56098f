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

from agcc.skips import SkipReport

log = logging.getLogger(__name__)

EXPERIMENT = "agcc"
DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
ARTIFACT_ROOT = "mlruns/artifacts"
#: Beside each stage's metrics.json: the few numbers `dvc metrics show` tabulates.
HEADLINE = "headline.json"


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


#: What a run is made from, besides its data: a change here makes the commit tag ``-dirty``.
#: Outputs that DVC rewrites during a repro (metrics.json, dvc.lock) do not count.
SOURCE_PATHS = (
    "src",
    "params.yaml",
    "dvc.yaml",
    "tune/dvc.yaml",
    "pyproject.toml",
    "requirements.txt",
)


def git_commit() -> str:
    """Current commit, ``-dirty`` when code or params differ from it, or ``unknown``."""
    try:
        sha = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def _git(*args: str) -> str:
    """Output of one git command in the working directory."""
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def input_hashes(dvc_stage: str) -> dict[str, str]:
    """``dvc.dep.<path>`` -> the hash DVC records in dvc.lock for each input of ``dvc_stage``.

    Computed now, from the files the stage is about to read (DVC's own hashing, so the values
    equal the dvc.lock entry written after the stage), not read from the previous dvc.lock.
    Empty outside a DVC project or for a stage dvc.yaml does not define.
    """
    if not Path("dvc.yaml").is_file():
        return {}
    try:
        from dvc.repo import Repo

        with Repo(".") as repo:
            stages = [
                st
                for st in repo.index.stages
                if st.addressing == dvc_stage or st.addressing.endswith(f":{dvc_stage}")
            ]
            deps = [d for st in stages[:1] for d in st.deps if not hasattr(d, "params")]
            return {f"dvc.dep.{d.def_path}": str(d.get_hash().value) for d in deps}
    except Exception as e:  # provenance must never stop a stage; say why it is missing
        log.warning("no DVC input hashes for %s: %s: %s", dvc_stage, type(e).__name__, e)
        return {}


def provenance(stage: str, corpus: str | None, dvc_stage: str) -> dict[str, str]:
    """Tags of a stage run: stage, corpus, commit, DVC experiment and the inputs' hashes."""
    tags = {"stage": stage, "corpus": corpus or "", "git_commit": git_commit()}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags | input_hashes(dvc_stage)


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
    #: The few numbers of ``headline.json``, DVC's metrics view (see :data:`HEADLINE`).
    headline: dict[str, float] = field(default_factory=dict)

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
        run.tags = provenance(stage, corpus, dvc_stage)
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
        write_metrics(
            Path(metrics_path), run.metrics, run.headline | {"skip_share": run.skips.share()}
        )


def write_metrics(path: Path, metrics: dict[str, Any], headline: dict[str, float]) -> None:
    """Write every count to ``path`` (metrics.json) and the headline beside it.

    DVC shows its metrics files as one table with a column per key, so only ``headline.json``
    (a few keys shared across stages: skip_share, utterances, segments, k, overlap, uar, ...)
    is declared as a DVC metric; metrics.json keeps the details for people and tests.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    rounded = {k: round(float(v), 4) for k, v in headline.items()}
    (path.parent / HEADLINE).write_text(json.dumps(rounded, indent=2, sort_keys=True) + "\n")
