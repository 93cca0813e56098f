"""train.engine: ray: the training grid as Ray tasks gives the outputs of the local processes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from agcc.params import ParamsError, load_params
from tests.integration.test_train_evaluate import pipeline, train_grid  # noqa: F401
from tests.tracking_store import runs as tracked_runs

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ray_with_two_workers_writes_what_one_local_worker_writes(pipeline: Path) -> None:  # noqa: F811
    outputs = {}
    for engine, workers in (("local", 1), ("ray", 2)):
        shutil.rmtree(pipeline / "train", ignore_errors=True)
        _, outputs[engine] = train_grid(pipeline, workers, engine)
    assert outputs["local"].keys() == outputs["ray"].keys()
    assert any(p.name.startswith("predictions_") for p in outputs["ray"])
    assert any(p.name == "history.csv" for p in outputs["ray"])
    assert [k for k in outputs["local"] if outputs["local"][k] != outputs["ray"][k]] == []
    stages = [r for r in tracked_runs(pipeline) if r.data.tags.get("stage") == "train"]
    parents = [r for r in stages if "parent_stage" not in r.data.tags]
    assert sorted(r.data.tags["engine"] for r in parents) == ["local", "local", "ray", "ray"]
    assert all(r.data.params["train.engine"] == r.data.tags["engine"] for r in parents)
    nested = [r for r in stages if "parent_stage" in r.data.tags]
    assert {r.data.tags["engine"] for r in nested} == {"local", "ray"}
    assert {r.info.status for r in nested} == {"FINISHED"}


def _params(tmp_path: Path, **train: object) -> Path:
    """The repository's params.yaml with ``train`` changed."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"] |= train
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_engine_params_default_to_local_and_bad_values_are_named(tmp_path: Path) -> None:
    tp = load_params(REPO / "params.yaml").train
    assert (tp.engine, tp.ray_address, tp.gpus_per_run) == ("local", None, 1.0)
    for address in ("auto", "ray://head:10001", "10.0.0.1:6379"):
        assert load_params(_params(tmp_path, engine="ray", ray_address=address)).train.ray_address
    assert load_params(_params(tmp_path, engine="ray", device="cuda")).train.device == "cuda"
    bad = [
        ({"engine": "spark"}, r"train\.engine"),
        ({"engine": "ray", "ray_address": "head"}, r"train\.ray_address.*no Ray address"),
        ({"engine": "ray", "gpus_per_run": 0}, r"train\.gpus_per_run"),
        ({"engine": "ray", "gpus_per_run": 2}, r"train\.gpus_per_run"),
        ({"engine": "ray", "device": "cuda:1"}, r"cuda:1 with train\.engine: ray.*cuda or auto"),
    ]
    for train, pattern in bad:
        with pytest.raises(ParamsError, match=pattern):
            load_params(_params(tmp_path, **train))
