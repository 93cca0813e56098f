"""Reading back the MLflow runs a test wrote to its temporary SQLite tracking store."""

from __future__ import annotations

from pathlib import Path


def runs(root: Path, experiment: str = "agcc") -> list:
    """All runs of ``experiment`` in ``root/mlflow.db`` (the ``tracked`` fixture's store)."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")
