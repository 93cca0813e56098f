"""dvc.yaml, the CLI, the params schema, the Makefile and the Dockerfile agree with each other."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml
from pydantic import BaseModel

from agcc.cli import _parser
from agcc.params import load_params

REPO = Path(__file__).resolve().parents[2]


def _stages() -> dict[str, dict]:
    """dvc.yaml stages with foreach stages expanded: per corpus (``${key}``) or per method of
    train.methods (``${item}``); only those placeholders are substituted."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    params = load_params(REPO / "params.yaml")
    out = {}
    for name, st in dvc.items():
        if st.get("foreach") == "${train.methods}":
            for method in params.train.methods:
                text = yaml.safe_dump(st["do"]).replace("${item}", method)
                out[f"{name}@{method}"] = yaml.safe_load(text)
        elif "foreach" in st:
            for key in params.corpora:
                text = yaml.safe_dump(st["do"]).replace("${key}", key)
                out[f"{name}@{key}"] = yaml.safe_load(text)
        else:
            out[name] = st
    return out


def _has_key(model: object, dotted: str) -> bool:
    """Whether a dotted params key exists in the validated params object."""
    node = model
    for part in dotted.split("."):
        if isinstance(node, dict):
            if part not in node:
                return False
            node = node[part]
        elif isinstance(node, BaseModel) and part in type(node).model_fields:
            node = getattr(node, part)
        else:
            return False
    return True


def test_every_dvc_param_key_exists_in_schema() -> None:
    params = load_params(REPO / "params.yaml")
    missing = [
        (stage, key)
        for stage, st in _stages().items()
        for key in st.get("params", [])
        if not _has_key(params, key)
    ]
    assert not missing, f"dvc.yaml names params the schema lacks: {missing}"


def test_every_stage_command_is_a_cli_subcommand_with_a_module() -> None:
    sub = next(a for a in _parser()._actions if a.dest == "command")
    for stage, st in _stages().items():
        words = st["cmd"].split()
        assert words[0] == "agcc", f"{stage}: {st['cmd']}"
        assert words[1] in sub.choices, f"{stage}: unknown subcommand {words[1]}"
        assert stage.split("@")[0] == words[1], f"stage {stage} runs {words[1]}"
        assert hasattr(importlib.import_module(f"agcc.stages.{words[1]}"), "run")
        # every option passed by dvc.yaml is accepted by the parser
        opts = [w for w in words[2:] if w.startswith("--")]
        known = {o for a in sub.choices[words[1]]._actions for o in a.option_strings}
        assert set(opts) <= known, f"{stage}: options {set(opts) - known}"


def test_source_deps_exist() -> None:
    for stage, st in _stages().items():
        for dep in st.get("deps", []):
            if dep.startswith("src/"):
                assert (REPO / dep).exists(), f"{stage}: dep {dep} missing"


def _requirements() -> dict[str, str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    pins = [ln.split("#")[0].strip() for ln in lines]
    return dict(p.split("==") for p in pins if p)


def test_requirements_are_exact_pins() -> None:
    reqs = _requirements()
    assert {"torch", "mlflow", "dvc", "pydantic", "tslearn", "transformers", "optuna"} <= set(reqs)
    assert all(re.fullmatch(r"\d+(\.\d+)*", v) for v in reqs.values()), reqs


def test_dockerfile_installs_the_same_requirement_set() -> None:
    docker = (REPO / "Dockerfile").read_text()
    torch_tag = re.search(r"^FROM (docker\.io/)?pytorch/pytorch:(\d+\.\d+\.\d+)-cuda", docker, re.M)
    assert torch_tag, "Dockerfile must start from a CUDA PyTorch image"
    assert torch_tag.group(2) == _requirements()["torch"], "base image torch != requirements pin"
    assert re.search(r"pip install -r requirements\.txt", docker)
    assert re.search(r"COPY requirements\.txt", docker)
    assert re.search(r"requirements\.lock", docker)  # every other package at its locked version
    assert re.search(r'ENTRYPOINT \["agcc-entrypoint"\]', docker)


def test_makefile_installs_the_same_requirement_set() -> None:
    make = (REPO / "Makefile").read_text()
    assert "-r requirements.txt" in make
    assert "grep -E '^torch==' requirements.txt" in make
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_stage_waits_for_the_whole_params_file_to_be_validated() -> None:
    stages = _stages()
    assert "params.yaml" in stages["params"]["deps"]
    assert stages["params"]["outs"] == [{"data/params.ok": {"cache": False}}]
    late = [n for n, st in stages.items() if n != "params" and "data/params.ok" not in st["deps"]]
    assert not late, f"stages that may run before params.yaml is validated: {late}"


def test_params_stage_names_a_misspelt_key_no_stage_tracks(tmp_path: Path) -> None:
    from agcc.cli import main

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["base"]["max_skip_shar"] = 0.05
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True))
    out = tmp_path / "params.ok"
    assert main(["--params", str(bad), "params", "--out", str(out)]) == 2
    assert not out.exists()
    good = tmp_path / "good.yaml"
    good.write_text((REPO / "params.yaml").read_text())
    assert main(["--params", str(good), "params", "--out", str(out)]) == 0
    assert out.read_text() == "params.yaml is valid\n"


def test_each_train_stage_tracks_its_own_method_section_and_no_other() -> None:
    from agcc.params import METHOD_SECTIONS, TrainParams

    stages = _stages()
    methods = load_params(REPO / "params.yaml").train.methods
    assert set(methods) == set(METHOD_SECTIONS)
    assert "train" not in stages  # one stage per method, no grid stage
    # train.workers changes how many models train at once and train.engine (ray_address,
    # gpus_per_run) what runs them, never an output (tests check both)
    untracked = {"workers", "engine", "ray_address", "gpus_per_run"}
    shared = {
        f"train.{f}"
        for f in TrainParams.model_fields
        if f not in METHOD_SECTIONS and f not in untracked
    }
    for method in methods:
        st = stages[f"train@{method}"]
        sections = {k for k in st["params"] if k.split(".")[:2][-1] in METHOD_SECTIONS}
        assert sections == {f"train.{method}"}, f"train@{method} tracks {sections}"
        assert shared <= set(st["params"]), f"train@{method} misses {shared - set(st['params'])}"
        assert "train" not in st["params"]  # the whole section would re-run every method
        assert not {f"train.{f}" for f in untracked} & set(st["params"])
        assert f"--method {method}" in st["cmd"] and f"--out data/train/{method}" in st["cmd"]
    evaluate = stages["evaluate"]
    assert "data/train" in evaluate["deps"]
    assert not [k for k in evaluate["params"] if k.split(".")[-1] in METHOD_SECTIONS]


def test_tune_tracks_the_tunable_methods_sections_only() -> None:
    from agcc.params import METHOD_SECTIONS, TUNABLE_METHODS

    tune = yaml.safe_load((REPO / "tune" / "dvc.yaml").read_text())["stages"]["tune"]
    params = load_params(REPO / "params.yaml")
    assert all(_has_key(params, k) for k in tune["params"]), tune["params"]
    sections = {k for k in tune["params"] if k.split(".")[:2][-1] in METHOD_SECTIONS}
    assert sections == {f"train.{m}" for m in TUNABLE_METHODS} and "train" not in tune["params"]
