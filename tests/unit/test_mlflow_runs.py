"""What MLflow shows of a stage: experiment kind, UARs in percent, run names, dataset inputs."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from agcc import tracking


def test_experiment_is_tagged_as_custom_model_development(tracked: Path) -> None:
    with tracking.stage_run("cluster", {}):
        pass
    tags = mlflow.get_experiment_by_name(tracking.EXPERIMENT).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_fraction_uars_reach_mlflow_in_percent_and_others_unchanged() -> None:
    metrics = {
        "val_uar": 0.5,
        "best_val_uar": 0.25,
        "test_uar.corp_b": 0.125,
        "test_uar.corp_a_to_corp_b.ag_cc": 0.4,
        "dev_uar_mean": 0.3,
        "best_dev_uar": 0.35,
        "demo_crema_to_demo_improv.ag_cc.uar_4cat": 41.0,
        "loss_er": 0.5,
        "n_models": 6,
    }
    out = tracking.percent_uars(metrics)
    assert out["val_uar"] == 50.0 and out["best_val_uar"] == 25.0
    assert out["test_uar.corp_b"] == 12.5 and out["test_uar.corp_a_to_corp_b.ag_cc"] == 40.0
    assert out["dev_uar_mean"] == pytest.approx(30.0) and out["best_dev_uar"] == 35.0
    assert out["demo_crema_to_demo_improv.ag_cc.uar_4cat"] == 41.0
    assert out["loss_er"] == 0.5 and out["n_models"] == 6.0


def test_stage_metrics_file_keeps_fractions_while_mlflow_gets_percent(tracked: Path) -> None:
    with tracking.stage_run("train", {}, metrics_path=tracked / "metrics.json") as st:
        st.metrics["test_uar.a_to_b.ag_cc"] = 0.5
        run_id = mlflow.active_run().info.run_id
    assert json.loads((tracked / "metrics.json").read_text())["test_uar.a_to_b.ag_cc"] == 0.5
    assert mlflow.get_run(run_id).data.metrics["test_uar.a_to_b.ag_cc"] == 50.0


def test_nested_run_names_put_the_seed_where_the_ui_does_not_cut_it(tracked: Path) -> None:
    assert tracking.readable_name("ag_cc:demo_crema->demo_improv:seed2") == (
        "seed2 ag_cc demo_crema→demo_improv"
    )
    assert tracking.readable_name("source_only:demo_crema:seed1") == (
        "seed1 source_only demo_crema"
    )
    assert tracking.readable_name("la_cc:a->b:binary_anger:seed1") == (
        "seed1 la_cc a→b binary_anger"
    )
    assert tracking.readable_name("k=25") == "k=25"
    with tracking.stage_run("train", {}) as st, st.child("pa_cc:a->b:seed3", {}):
        run = mlflow.active_run()
        run = mlflow.get_run(run.info.run_id)
    assert run.info.run_name == "seed3 pa_cc a→b"
    assert run.data.tags["agcc.run"] == "pa_cc:a->b:seed3"


def test_data_inputs_are_logged_as_datasets_with_the_dvc_hash(
    tracked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = {
        "dvc.dep.data/prepared/corp_a/manifest.csv": "0123456789abcdef",
        "dvc.dep.data/features/corp_a": "fedcba9876543210.dir",
        "dvc.dep.data/params.ok": "1111",
        "dvc.dep.src/agcc/stages/train.py": "2222",
    }
    monkeypatch.setattr(tracking, "input_hashes", lambda stage: hashes)
    with tracking.stage_run("train", {}) as st, st.child("m:a:seed1", {}):
        child = mlflow.active_run().info.run_id
    parent = mlflow.get_run(child).data.tags["mlflow.parentRunId"]
    for run_id in (parent, child):
        inputs = mlflow.get_run(run_id).inputs.dataset_inputs
        got = {d.dataset.name: d.dataset.digest for d in inputs}
        assert got == {
            "data/prepared/corp_a/manifest.csv": "0123456789abcdef",
            "data/features/corp_a": "fedcba9876543210",
        }
