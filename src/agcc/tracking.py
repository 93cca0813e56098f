"""MLflow tracking and DVC metrics for every stage; the only module that imports mlflow.

Nothing happens at import time. The backend defaults to ``sqlite:///mlruns/mlflow.db`` with
artifacts under ``mlruns/artifacts`` (MLflow 3 deprecates the plain file store);
``MLFLOW_TRACKING_URI`` overrides it, so a remote tracking server works the same way.

What the runs hold (docs/mlflow.md): the experiment is tagged as custom model development
(:data:`EXPERIMENT_KIND`); every UAR reaches MLflow in percent (:func:`percent_uars`); each
stage run, and each of its nested runs, lists the data folders it read as MLflow dataset inputs
(digest = DVC hash); each trained model is an MLflow PyTorch model ``model``
(:meth:`StageRun.log_model`), loaded back by :func:`load_model`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
import warnings
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
#: MLflow 3's experiment tag for the kind of work (the UI's "custom model development", as
#: opposed to GenAI apps and agents); without it MLflow 3.17 opens the experiment in GenAI mode.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
#: Name of the MLflow model of a training run: ``runs:/<run_id>/model``.
MODEL_NAME = "model"
#: UAR metrics the stages compute as fractions (val_uar, best_val_uar, test_uar.<target>,
#: test_uar.<direction>.<method>, dev_uar_mean, best_dev_uar): MLflow gets them in percent,
#: like the evaluate stage's uar_4cat and Table II.
FRACTION_UAR = re.compile(r"(^|\.)(best_)?(val|test|dev)_uar(_mean)?(\.|$)")


def _mlflow():  # noqa: ANN202 - the module
    """Import mlflow lazily with telemetry off and the project's backend selected."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    with _store_lock(uri):  # the first process to open a fresh store creates its tables
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:
            location = None
            if os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI) == DEFAULT_URI:
                artifact_root().mkdir(parents=True, exist_ok=True)
                location = artifact_root().resolve().as_uri()
            mlflow.create_experiment(EXPERIMENT, artifact_location=location)
        experiment = mlflow.set_experiment(EXPERIMENT)
        key, kind = EXPERIMENT_KIND
        if experiment.tags.get(key) != kind:
            mlflow.set_experiment_tag(key, kind)
    return mlflow


#: Where DVC runs a queued experiment (``dvc exp run --queue``, then ``dvc queue start``): a
#: temporary copy of the repository at ``<repository>/.dvc/tmp/exps/<tmp...>``.
EXPS_WORKSPACE = (".dvc", "tmp", "exps")


def project_root(cwd: Path | None = None) -> Path:
    """The repository runs are tracked for: the main one when ``cwd`` (default: the working
    directory) lies in a queued experiment's temporary workspace, else ``cwd`` itself."""
    parts = (cwd or Path.cwd()).absolute().parts
    n = len(EXPS_WORKSPACE)
    for i in range(len(parts) - n):
        if parts[i : i + n] == EXPS_WORKSPACE:
            return Path(*parts[:i])
    return Path(*parts)


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else :data:`DEFAULT_URI`.

    In a queued experiment's workspace a relative SQLite path (the default, or one passed
    through by ``dvc queue start``) is taken from the main repository, so the experiment's runs
    land in the project's store, not in a copy deleted with the workspace.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    path = uri.removeprefix("sqlite:///")
    root = project_root()
    if uri.startswith("sqlite:///") and not path.startswith("/") and root != Path.cwd():
        return f"sqlite:///{root / path}"
    return uri


def artifact_root() -> Path:
    """Artifacts of the default store: :data:`ARTIFACT_ROOT` of :func:`project_root`."""
    root = project_root()
    return Path(ARTIFACT_ROOT) if root == Path.cwd() else root / ARTIFACT_ROOT


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An exclusive file lock beside a SQLite store (``<db>.lock``) while the block runs.

    Processes opening a fresh store at once would each run MLflow's table migrations and all
    but one crash (``duplicate column name``); under the lock the first creates the tables and
    the others find them. Other stores (a tracking server, PostgreSQL) are not locked here.
    """
    path = uri.removeprefix("sqlite:///")
    if not uri.startswith("sqlite:///") or path in ("", ":memory:"):
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with file_lock(f"{path}.lock"):
        yield


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock (``flock``) on the file ``path`` (created if missing) while
    the block runs: processes of one machine, or of a filesystem that honours flock, take
    turns."""
    import fcntl

    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def percent_uars(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics as MLflow gets them: fraction UARs (:data:`FRACTION_UAR`) times 100."""
    return {k: 100.0 * float(v) if FRACTION_UAR.search(k) else float(v) for k, v in metrics.items()}


def readable_name(name: str) -> str:
    """A nested run's name with its seed first, so that the MLflow UI's cut keeps it.

    ``ag_cc:demo_crema->demo_improv:seed1`` -> ``seed1 ag_cc demo_crema→demo_improv`` (and
    ``...:binary_anger:seed1`` -> ``seed1 ag_cc demo_crema→demo_improv binary_anger``); other
    names are returned unchanged.
    """
    parts = name.split(":")
    if len(parts) >= 3 and parts[-1].startswith("seed"):
        return " ".join([parts[-1], parts[0], *(p.replace("->", "→") for p in parts[1:-1])])
    return name


def _datasets(tags: dict[str, str]) -> list[Any]:
    """MLflow datasets of the data folders and files a stage reads (from its DVC input tags).

    Each is a :class:`mlflow.data.meta_dataset.MetaDataset` named by its path relative to the
    repository, with DVC's hash as digest: nothing is read or copied.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    out = []
    for key, digest in tags.items():
        path = key.removeprefix("dvc.dep.")
        if key.startswith("dvc.dep.") and path.startswith("data/") and path != "data/params.ok":
            with warnings.catch_warnings():  # a relative path matches two local source types
                warnings.simplefilter("ignore", UserWarning)
                source = resolve_dataset_source(path)
            out.append(MetaDataset(source, name=path, digest=digest.removesuffix(".dir")[:36]))
    return out


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
        dirty = _sources_differ(_git("rev-parse", "--show-toplevel"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def _sources_differ(root: str) -> bool:
    """True when a tracked file of :data:`SOURCE_PATHS` under ``root`` differs from HEAD.

    Compared by content, not with ``git status``, which trusts the file stamps of the index:
    DVC's queued experiments run in a copy whose index another library wrote, and there
    ``git status`` calls the ``params.yaml`` an experiment changed unchanged. A tracked file
    deleted, or a file added to the index, counts; untracked files do not.
    """
    entries = [
        e.split("\t", 1)
        for e in _git("-C", root, "ls-tree", "-r", "-z", "HEAD", "--", *SOURCE_PATHS).split("\0")
        if e
    ]
    staged = {e for e in _git("-C", root, "ls-files", "-z", "--", *SOURCE_PATHS).split("\0") if e}
    if staged != {path for _, path in entries}:
        return True
    # a symlink's blob is the path it points to, not hashed here
    head = {path: meta.split()[2] for meta, path in entries if not meta.startswith("120000")}
    if not all((Path(root) / path).is_file() for path in head):
        return True
    done = subprocess.run(
        ["git", "-C", root, "hash-object", "--stdin-paths"],
        input="\n".join(head),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split() != list(head.values())


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
        """Log per-step metrics (e.g. per epoch) to MLflow (UARs in percent)."""
        self.mlflow.log_metrics(percent_uars(metrics), step=step)

    @contextmanager
    def child(self, name: str, params: dict[str, Any]) -> Iterator[StageRun]:
        """A nested MLflow run (one model fit, one trial) under this stage's run.

        The child shares this stage's skip report; an exception marks only the child FAILED
        before it propagates.
        """
        with self.mlflow.start_run(run_name=readable_name(name), nested=True):
            self.mlflow.set_tags(self.tags | {"parent_stage": self.stage, "agcc.run": name})
            _log_datasets(self.mlflow, self.tags)
            self.mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params).items()})
            try:
                yield StageRun(self.stage, self.skips, mlflow=self.mlflow, tags=self.tags)
            except BaseException as e:
                self.mlflow.end_run(status=end_status(e))
                raise

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Tag the active (stage or child) run; values are stored as strings."""
        self.mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Log final metrics of the active (stage or child) run to MLflow only (UARs in %)."""
        self.mlflow.log_metrics(percent_uars(metrics))

    def log_model(self, checkpoint: str | Path, features_dir: str | Path | None = None) -> None:
        """Attach ``model.pt`` and log it as the MLflow PyTorch model ``model`` of the run.

        With ``features_dir`` (the training corpus's features folder) the checkpoint first
        records the extractor of its frames (:func:`agcc.io.checkpoint.add_feature_identity`).

        The logged module is :class:`agcc.io.checkpoint.Posteriors`: frames (B, T, D) or
        (B, T, L, D) of the feature extractor named in the checkpoint -> emotion posteriors
        (B, C). Its MLmodel metadata holds that extractor (``features``), the emotions and the
        run's method, source and seed; the signature leaves batch and frame counts free. It is
        pickled (MLflow 3's default ``pt2`` export would fix the frame count), so loading it
        needs agcc installed; requirements are given, not inferred (inference re-imports the
        model in a subprocess per run).
        """
        import numpy as np
        import torch
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        ckpt = _checkpoints()
        if features_dir is not None:
            ckpt.add_feature_identity(Path(checkpoint), Path(features_dir))
        self.log_artifact(checkpoint)
        module, metadata = ckpt.posterior_model(checkpoint)
        tail = tuple(module.frame_shape)
        example = np.zeros((1, 8, *tail), dtype=np.float32)  # (B, T, D) or (B, T, L, D)
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, *tail))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, module.n_classes))]),
        )
        flavour_log = logging.getLogger("mlflow.pytorch")
        level = flavour_log.level
        flavour_log.setLevel(logging.ERROR)  # its caution about pickle, once per model: see above
        try:
            self.mlflow.pytorch.log_model(
                module,
                name=MODEL_NAME,
                signature=signature,
                input_example=example,
                metadata=metadata,
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "agcc"],
                serialization_format="pickle",
            )
        finally:
            flavour_log.setLevel(level)


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
    file is written, so a failed stage never looks finished. SIGTERM and Ctrl-C end it as
    KILLED; runs left RUNNING by a process killed with SIGKILL are marked KILLED when the next
    stage run starts (each run is tagged with its process: ``agcc.pid``, ``agcc.host``).
    """
    mlflow = _mlflow()
    end_stale_runs(mlflow)
    dvc_stage = f"{stage}@{corpus}" if corpus else stage
    name = f"{stage}:{corpus}" if corpus else stage
    run = StageRun(stage=dvc_stage, skips=SkipReport(dvc_stage))
    t0 = time.perf_counter()
    with mlflow.start_run(run_name=name) as active, _terminate_raises(mlflow):
        run.mlflow = mlflow
        run.tags = provenance(stage, corpus, dvc_stage) | process_tags()
        mlflow.set_tags(run.tags)
        mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params).items()})
        _log_datasets(mlflow, run.tags)
        try:
            yield run
            _finish(run, time.perf_counter() - t0, metrics_path, skips_path, max_skip_share)
        except BaseException as e:
            if skips_path is not None:
                run.skips.write(skips_path)
            status = end_status(e)
            mlflow.end_run(status=status)
            log.error("%s failed; MLflow run %s marked %s", name, active.info.run_id, status)
            raise


class Terminated(SystemExit):
    """Raised in the main thread when the process receives SIGTERM (exit status 143)."""


#: Tags of every run naming the process that runs it, so a later run can tell it is gone.
PID_TAG, HOST_TAG, START_TAG = "agcc.pid", "agcc.host", "agcc.pid_start"


def end_status(e: BaseException) -> str:
    """MLflow status of a run ended by ``e``: KILLED for SIGTERM or Ctrl-C, else FAILED."""
    return "KILLED" if isinstance(e, Terminated | KeyboardInterrupt) else "FAILED"


def _process_start(pid: int) -> str:
    """Start time of process ``pid`` in clock ticks since boot (Linux), or "" when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22 of proc(5), after "pid (comm)"


def process_tags() -> dict[str, str]:
    """pid, host and process start time of this process (tags of each run it starts)."""
    pid = os.getpid()
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), START_TAG: _process_start(pid)}


def _gone(tags: dict[str, str]) -> bool:
    """True when the process named by a run's tags no longer runs on this host."""
    try:
        pid = int(tags.get(PID_TAG, ""))
    except ValueError:
        return False  # a run of an older version: nothing to tell by
    if pid == os.getpid() or tags.get(HOST_TAG) != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    start = tags.get(START_TAG, "")
    return bool(start) and _process_start(pid) not in ("", start)  # pid reused since


def end_stale_runs(mlflow: Any) -> list[str]:
    """Mark KILLED every RUNNING run of this host whose process is gone (killed by SIGKILL).

    A process killed with SIGKILL cannot end its own runs; the next stage run does it. Runs of
    other hosts are left alone (their processes cannot be checked from here). Returns the ids.
    """
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    client = mlflow.MlflowClient()
    running = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = "
        f"'{socket.gethostname()}'",
        max_results=5000,
    )
    stale = [r.info.run_id for r in running if _gone(r.data.tags)]
    for run_id in stale:
        client.set_terminated(run_id, status="KILLED")
        log.warning("MLflow run %s: its process is gone (killed); marked KILLED", run_id)
    return stale


@contextmanager
def _terminate_raises(mlflow: Any) -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated`; at exit, open runs end KILLED.

    Only the main thread can take signals; elsewhere the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise Terminated(128 + signum)

    def at_exit() -> None:  # runs before MLflow's own atexit handler, which says FINISHED
        while mlflow.active_run() is not None:
            mlflow.end_run(status="KILLED")

    previous = signal.signal(signal.SIGTERM, on_term)
    atexit.register(at_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        atexit.unregister(at_exit)


def _log_datasets(mlflow: Any, tags: dict[str, str]) -> None:
    """Log the data a run reads as its MLflow dataset inputs (see :func:`_datasets`)."""
    datasets = _datasets(tags)
    if datasets:
        n = len(datasets)
        mlflow.log_inputs(datasets, contexts=["input"] * n, tags_list=[None] * n)


def _checkpoints() -> Any:  # noqa: ANN401 - the module
    """:mod:`agcc.io.checkpoint`, imported by name.

    dvc.yaml's code dependencies follow the import graph, and every stage imports this module:
    a plain import would make every stage depend on the SER model's code. The train stage, the
    one that logs models, imports agcc.io.checkpoint itself; ``agcc predict`` is no DVC stage.
    """
    import importlib

    return importlib.import_module("agcc.io.checkpoint")


def load_model(source: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """An SER model and its metadata from a checkpoint file or an MLflow model URI.

    ``source`` is a model.pt path, or ``runs:/<run_id>/model``, ``models:/<name>/<version>``
    or any URI MLflow resolves. Returns the :class:`agcc.io.checkpoint.Posteriors` module (eval
    mode, on ``device``) and its metadata (``features``: the extractor it was trained on;
    ``emotions``; method, source, seed).
    """
    if Path(source).is_file():
        return _checkpoints().posterior_model(source, device)
    mlflow = _mlflow()
    module = mlflow.pytorch.load_model(str(source), map_location=device)
    return module.eval(), dict(module.metadata)


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
    run.mlflow.log_metrics(percent_uars(run.metrics))
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
